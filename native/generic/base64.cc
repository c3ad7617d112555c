// Strict base64 decoding, bytes to bytes, for the server's image bodies (src/serve/base64.ts). Node 20 decodes base64
// only from a JS string, and making a 200 KB string of a request body's bytes costs more than decoding them; this
// reads the body buffer in place. Strict means what Python's b64encode writes: the standard alphabet, padded to a
// multiple of 4, '=' only as the last one or two characters. Anything else is refused (returns false), never
// guessed at, so the JS caller answers 400.
#include <cstddef>
#include <cstdint>

#include "../kernels.h"

namespace sqap {
namespace {

struct Sextets {
  int16_t value[256];
  Sextets() {
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 256; i++) value[i] = -1;
    for (int i = 0; i < 64; i++) value[static_cast<uint8_t>(alphabet[i])] = static_cast<int16_t>(i);
  }
};
const Sextets kSextets;

// '=' characters at the end of a text of n >= 4 characters (0 to 2)
size_t padding_of(const uint8_t* src, size_t n) { return src[n - 1] == '=' ? (src[n - 2] == '=' ? 2 : 1) : 0; }

}  // namespace

bool base64_decode_strict(uint8_t* dst, size_t dst_bytes, const uint8_t* src, size_t n) {
  if (n % 4 != 0) return false;
  if (n == 0) return dst_bytes == 0;
  const size_t padding = padding_of(src, n);
  if (dst_bytes != n / 4 * 3 - padding) return false;
  const int16_t* s = kSextets.value;
  const size_t whole = padding == 0 ? n : n - 4;
  int bad = 0;  // any -1 makes it negative
  uint8_t* out = dst;
  for (size_t i = 0; i < whole; i += 4) {
    const int a = s[src[i]], b = s[src[i + 1]], c = s[src[i + 2]], d = s[src[i + 3]];
    bad |= a | b | c | d;
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) | (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    out[0] = static_cast<uint8_t>(v >> 16);
    out[1] = static_cast<uint8_t>(v >> 8);
    out[2] = static_cast<uint8_t>(v);
    out += 3;
  }
  if (padding > 0) {
    const int a = s[src[n - 4]], b = s[src[n - 3]], c = padding == 1 ? s[src[n - 2]] : 0;
    bad |= a | b | c;
    const uint32_t v = (static_cast<uint32_t>(a & 63) << 18) | (static_cast<uint32_t>(b & 63) << 12) | (static_cast<uint32_t>(c & 63) << 6);
    *out++ = static_cast<uint8_t>(v >> 16);
    if (padding == 1) *out++ = static_cast<uint8_t>(v >> 8);
  }
  return bad >= 0;
}

}  // namespace sqap
