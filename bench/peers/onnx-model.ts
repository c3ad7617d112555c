// A minimal ONNX model writer: the protobuf wire format by hand (varints, length-delimited fields) for the few
// messages a one-node graph needs (onnx.proto3 field numbers noted at each writer). No dependency beyond Node.

type Field = Uint8Array;

function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n; // int64 negatives as two's complement
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** field with wire type 0 (varint) */
function int(field: number, value: number | bigint): Field {
  return Uint8Array.from([...varint((field << 3) | 0), ...varint(value)]);
}

/** field with wire type 2 (bytes, strings, sub-messages) */
function bytes(field: number, payload: Uint8Array | string): Field {
  const data = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return concat([Uint8Array.from([...varint((field << 3) | 2), ...varint(data.length)]), data]);
}

/** field with wire type 5 (32-bit float) */
function float(field: number, value: number): Field {
  const b = new Uint8Array(5);
  b[0] = (field << 3) | 5;
  new DataView(b.buffer).setFloat32(1, value, true);
  return b;
}

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;

/** TensorProto: dims 1, data_type 2, name 8, raw_data 9 */
export function tensor(name: string, dataType: number, dims: number[], raw: ArrayBufferView): Field {
  return concat([
    ...dims.map((d) => int(1, d)),
    int(2, dataType),
    bytes(8, name),
    bytes(9, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)),
  ]);
}

/** AttributeProto: name 1, f 2, i 3, type 20 (FLOAT 1, INT 2) */
export function intAttribute(name: string, value: number): Field {
  return concat([bytes(1, name), int(3, value), int(20, 2)]);
}

export function floatAttribute(name: string, value: number): Field {
  return concat([bytes(1, name), float(2, value), int(20, 1)]);
}

/** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7 */
export function node(opType: string, inputs: string[], outputs: string[], attributes: Field[] = [], domain = ''): Field {
  return concat([
    ...inputs.map((i) => bytes(1, i)),
    ...outputs.map((o) => bytes(2, o)),
    bytes(3, `${opType}_0`),
    bytes(4, opType),
    ...attributes.map((a) => bytes(5, a)),
    ...(domain ? [bytes(7, domain)] : []),
  ]);
}

/** ValueInfoProto (name 1, type 2) of a tensor: TypeProto.tensor_type 1 {elem_type 1, shape 2 {dim 1 {dim_value 1 | dim_param 2}}} */
export function valueInfo(name: string, elemType: number, dims: Array<number | string>): Field {
  const shape = concat(dims.map((d) => bytes(1, typeof d === 'number' ? int(1, d) : bytes(2, d))));
  const tensorType = concat([int(1, elemType), bytes(2, shape)]);
  return concat([bytes(1, name), bytes(2, bytes(1, tensorType))]);
}

/**
 * ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 ({domain 1, version 2}).
 * GraphProto: node 1, name 2, initializer 5, input 11, output 12.
 */
export function model(options: { nodes: Field[]; initializers: Field[]; inputs: Field[]; outputs: Field[] }): Uint8Array {
  const graph = concat([
    ...options.nodes.map((n) => bytes(1, n)),
    bytes(2, 'bench'),
    ...options.initializers.map((t) => bytes(5, t)),
    ...options.inputs.map((i) => bytes(11, i)),
    ...options.outputs.map((o) => bytes(12, o)),
  ]);
  return concat([
    int(1, 8),
    bytes(2, 'sqap-vla bench/peers'),
    bytes(7, graph),
    bytes(8, concat([bytes(1, ''), int(2, 17)])),
    bytes(8, concat([bytes(1, 'com.microsoft'), int(2, 1)])),
  ]);
}
