// MD5 (RFC 1321) of a string's UTF-8 bytes, as lowercase hex. The API signs every call with
// md5(timestamp + token) and WebCrypto offers no MD5, so the console carries this small implementation.
"use strict";

(function (global) {
  // Per-round left-rotation amounts, and the sine-derived constants K[i] = floor(abs(sin(i + 1)) * 2^32).
  const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const K = new Uint32Array(64);
  for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296);

  // The message padded to a multiple of 64 bytes: a 1 bit, zeros, then the bit length (little-endian).
  function padded(bytes) {
    const length = (((bytes.length + 8) >> 6) + 1) << 6;
    const out = new Uint8Array(length);
    out.set(bytes);
    out[bytes.length] = 0x80;
    const view = new DataView(out.buffer);
    const bits = bytes.length * 8;
    view.setUint32(length - 8, bits >>> 0, true);
    view.setUint32(length - 4, Math.floor(bits / 4294967296), true);
    return view;
  }

  function md5(text) {
    const view = padded(new TextEncoder().encode(String(text)));
    const state = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
    const words = new Uint32Array(16);
    for (let offset = 0; offset < view.byteLength; offset += 64) {
      for (let j = 0; j < 16; j++) words[j] = view.getUint32(offset + 4 * j, true);
      let [a, b, c, d] = state;
      for (let i = 0; i < 64; i++) {
        const round = i >> 4;
        let f, g;
        if (round === 0) { f = (b & c) | (~b & d); g = i; }
        else if (round === 1) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
        else if (round === 2) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
        else { f = c ^ (b | ~d); g = (7 * i) & 15; }
        const sum = (a + f + K[i] + words[g]) >>> 0;
        const shift = SHIFTS[(round << 2) | (i & 3)];
        a = d;
        d = c;
        c = b;
        b = (b + ((sum << shift) | (sum >>> (32 - shift)))) >>> 0;
      }
      state[0] += a;
      state[1] += b;
      state[2] += c;
      state[3] += d;
    }
    let hex = "";
    for (const word of state) {
      for (let k = 0; k < 32; k += 8) hex += ((word >>> k) & 255).toString(16).padStart(2, "0");
    }
    return hex;
  }

  global.md5 = md5;
})(window);
