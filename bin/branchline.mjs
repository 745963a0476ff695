#!/usr/bin/env node
// The installed entry point. Node 24 runs our TypeScript sources directly (type
// stripping); the single-executable image uses a bundled build instead.
import '../agent/cli.ts';
