// @statsig/js-client, unmodified, under Node against gatehouse (see run_users.mjs).
// Usage: node js_client.mjs BASE_URL CLIENT_KEY USERS_JSON MARKER
// Prints {"answers": [{user, gates, configs, params}], "initialized": bool} (run_users.mjs).
import { StatsigClient } from '@statsig/js-client';
import { runUsers } from './run_users.mjs';

const [base, key, usersJson, marker] = process.argv.slice(2);
const { users, gates, configs, paramStores } = JSON.parse(usersJson);
const event = { eventName: 'sdk_check_js', value: marker, metadata: { sdk: 'js' } };
const result = await runUsers(StatsigClient, { base, key, users, gates, configs, paramStores, event });
console.log(JSON.stringify(result));
