/*
 * manifest -- which Feishu files a `tokendist files download` folder
 * holds, keyed by Feishu's file_key, so that "already downloaded" does not
 * depend on a file name (two files may share one, and a later run may not
 * list the earlier file at all).
 *
 * The manifest is a text file in the folder, MANIFEST_NAME, one line per
 * file: the file_key (percent-encoded) and the local name, separated by a
 * tab.  A line is claimed before its download starts and is appended with
 * a single write(2) and fsync'ed, so after a crash the file holds whole
 * lines and at most one torn last line, which is ignored (and terminated
 * by the next append).  The leading dot keeps it out of globs like *.pdf.
 *
 * One run holds the manifest at a time (an exclusive flock for the life
 * of the td_manifest): a cron run that overlaps a slow earlier one stops
 * instead of claiming the same files twice.
 */
#ifndef TD_MANIFEST_H
#define TD_MANIFEST_H

#include <stddef.h>

#define TD_MANIFEST_NAME ".tokendist-files"
#define TD_MANIFEST_MAX (64u << 20)     /* 64 MB: some 200,000 files */

typedef struct td_manifest td_manifest;

/* Opens (creating it when missing) and locks the manifest of folder dir.
 * TD_EUNAVAIL when another process holds it, TD_ETOOBIG over
 * TD_MANIFEST_MAX, TD_EIO otherwise; err says which, naming the file. */
int td_manifest_open(td_manifest **out, const char *dir, char *err, size_t errlen);

/* Did the folder have a manifest before this run (an empty file counts
 * as none; td_manifest_open writes its header line, so after one run of
 * this version it has one)?  A folder without one was filled by an older
 * tokendist, which went by file name: its files are adopted by name
 * instead of fetched again. */
int td_manifest_existed(const td_manifest *m);

/* The local name recorded for file_key, or NULL. */
const char *td_manifest_name_of(const td_manifest *m, const char *file_key);

/* Is name the local name of some file_key? */
int td_manifest_claimed(const td_manifest *m, const char *name);

/* Records file_key -> name (durably, before this returns). */
int td_manifest_add(td_manifest *m, const char *file_key, const char *name, char *err, size_t errlen);

/* Unlocks, closes and frees; NULL-safe. */
void td_manifest_close(td_manifest *m);

#endif
