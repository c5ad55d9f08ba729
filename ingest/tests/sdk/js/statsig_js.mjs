// statsig-js, Statsig's legacy JavaScript client SDK, unmodified, under Node against
// gatehouse (see legacy_users.mjs).
// Usage: node statsig_js.mjs BASE_URL CLIENT_KEY USERS_JSON MARKER
// Prints {"answers": [{user, gates: {name: value}, configs: {name: value}}], "initialized": bool}.
import statsigJs from 'statsig-js';
import { runLegacyUsers } from './legacy_users.mjs';

const [base, key, usersJson, marker] = process.argv.slice(2);
const { users, gates, configs } = JSON.parse(usersJson);
const event = { eventName: 'sdk_check_statsig_js', value: marker, metadata: { sdk: 'statsig-js' } };
// Outside a browser the SDK sends nothing unless told that is meant.
const options = { ignoreWindowUndefined: true };
const result = await runLegacyUsers(statsigJs.default, { base, key, users, gates, configs, event, options });
console.log(JSON.stringify(result));
