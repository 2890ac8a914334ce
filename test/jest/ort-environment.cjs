// Jest runs each test file in its own V8 context, with its own typed-array constructors. onnxruntime-node
// returns output tensors whose data was made in the main context, and onnxruntime-common's
// `instanceof Float32Array` check then fails ("A float32 tensor's data must be type of function
// Float32Array()"). Test files that run ORT sessions in-process name this environment in their docblock
// (@jest-environment ./test/jest/ort-environment.cjs); it gives the test context the main context's
// ArrayBuffer and typed arrays, so both sides agree.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = ['ArrayBuffer', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OrtEnvironment;
