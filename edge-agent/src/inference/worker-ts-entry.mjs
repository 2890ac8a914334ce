// Starts the TypeScript worker from sources (under tsx or jest): registers tsx in this worker thread,
// then loads worker.ts. A compiled build (dist/) runs worker.js directly instead.
import { tsImport } from 'tsx/esm/api';

await tsImport('./worker.ts', import.meta.url);
