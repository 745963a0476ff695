#!/usr/bin/env node
// The installed entry point of branchctl. Node 24 runs the TypeScript sources directly.
import '../cli.ts';
