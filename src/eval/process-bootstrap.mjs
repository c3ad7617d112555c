// Entry of run.ts's variant processes: registers tsx's loader, then imports the TypeScript entry given as argv[2].
import { register } from 'tsx/esm/api';

register();
await import(process.argv[2]);
