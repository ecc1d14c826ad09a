#!/usr/bin/env node
/**
 * The agent's own entry point: `node src/agent/run.ts --config site.yaml` (what `hashwatt agent`
 * runs), for a site box that runs only the agent.
 */
import { runAgentCli } from './main.ts';

const code = await runAgentCli(process.argv.slice(2));
// Handles a hung device left open past its timeout must not keep a stopped agent alive.
process.exit(code);
