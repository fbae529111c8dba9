// The sandbox's Unleash server: `node server.mjs`, configured by the environment `python -m sandbox up`
// hands it (sandbox/unleash.py), never by a file. It migrates its PostgreSQL database, creates the
// initial admin and client tokens (INIT_ADMIN_API_TOKENS, INIT_BACKEND_API_TOKENS: only into a
// database that has no token yet) and listens on SANDBOX_UNLEASH_HOST:SANDBOX_UNLEASH_PORT.
// Nothing calls out of the machine: the version check is off here, telemetry by SEND_TELEMETRY=false.
import { LogLevel, start } from 'unleash-server';

const env = process.env;
for (const name of ['SANDBOX_UNLEASH_HOST', 'SANDBOX_UNLEASH_PORT', 'SANDBOX_UNLEASH_DB_PORT', 'SANDBOX_UNLEASH_DB_NAME']) {
  if (!env[name]) {
    console.error(`${name} is not set: start this server with \`python -m sandbox up\``);
    process.exit(2);
  }
}
const url = `http://${env.SANDBOX_UNLEASH_HOST}:${env.SANDBOX_UNLEASH_PORT}`;
await start({
  db: {
    host: env.SANDBOX_UNLEASH_DB_HOST ?? '127.0.0.1',
    port: Number(env.SANDBOX_UNLEASH_DB_PORT),
    user: env.SANDBOX_UNLEASH_DB_USER ?? 'postgres',
    password: '',
    database: env.SANDBOX_UNLEASH_DB_NAME,
    ssl: false,
  },
  server: { host: env.SANDBOX_UNLEASH_HOST, port: Number(env.SANDBOX_UNLEASH_PORT), unleashUrl: url },
  versionCheck: { enable: false },
  logLevel: LogLevel.warn,
});
console.log(`Unleash serves ${url}`);
