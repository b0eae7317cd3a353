// A CommonJS module (require) using the installed package.
import tokendist = require('tokendist-client');

const { createClient, isFeishuInvalidTokenError } = tokendist;
const client: tokendist.TokendistClient = createClient({ apiUrl: 'https://h/get-token', readKey: 'k' });

export async function use(): Promise<boolean> {
  const t: string = await client.getAccessToken();
  return isFeishuInvalidTokenError({ code: 99991663 }) && t.length > 0;
}
// @ts-expect-error a token name is a string
createClient({ apiUrl: 'https://h/get-token', name: 7 });
