/** What this build of Shuttle is: its version (package.json) and the Node.js it runs on. */
import { readFileSync } from 'node:fs';

export const SHUTTLE_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
export const NODE_VERSION = process.versions.node;
