#!/usr/bin/env node
// Plain JavaScript on purpose: this must run (and refuse clearly) on an old Node before any
// TypeScript is loaded.
const REQUIRED = [26, 10, 0];

function older(have, want) {
  for (let i = 0; i < want.length; i++) {
    if (have[i] !== want[i]) return have[i] < want[i];
  }
  return false;
}

if (older(process.versions.node.split('.').map(Number), REQUIRED)) {
  process.stderr.write(
    `shuttle: Node.js >= ${REQUIRED.join('.')} is required, but this is ${process.version} (${process.execPath}).\n` +
      'Run it through npm (npm start, npm run shuttle -- ...) after `npm install`: the project installs Node ' +
      `${REQUIRED.join('.')} as its "node" dependency. Or install Node ${REQUIRED.join('.')}+ yourself.\n`,
  );
  process.exit(1);
}

// An upgraded process first closes the old one's connections it inherited (see the module).
if (process.env.SHUTTLE_UPGRADE_FROM) (await import('../src/upgrade/inherited-fds.ts')).closeInheritedSockets();

await import('../src/cli/main.ts');
