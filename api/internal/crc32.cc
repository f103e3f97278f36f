// CRC-32 (ZIP / zlib polynomial): api/internal/crc32.h.
//
// The fast path folds the message 64 bytes at a time with carry-less
// multiplication: a 128-bit block A that lies D bits before the end of the
// part still to be processed can be replaced by A * x^D mod P added into the
// block D bits further on, without changing the message's remainder mod P.
// Once fewer than 16 bytes remain, the last 128-bit block and the tail are
// run through the table algorithm. The folding constants are computed (not
// copied) from the polynomial when first used. With VPCLMULQDQ the same
// folds run on two 128-bit blocks per instruction, eight 256-bit
// accumulators (256 bytes) per step, so that enough multiplications are in
// flight to hide their latency; the accumulators are then folded into one
// 128-bit block and finished as above. With AVX-512, eight 512-bit
// accumulators (512 bytes) per step, the three XORs of a fold in one
// ternary-logic instruction, and the accumulators folded onto the last one
// in parallel (each by its own distance) rather than one after another.
//
// Crc32Combine works on the CRC register as a polynomial (reflected: bit 31
// is the coefficient of x^0): appending n bytes multiplies the register by
// x^(8n) mod P, and x^(8n) is built by squaring from x^8.

#include <array>
#include <cstdint>
#include <cstring>

#include "api/internal/crc32.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace dcplan::internal {
namespace {

constexpr uint32_t kReflectedPolynomial = 0xEDB88320u;

struct Tables {
  uint32_t t[8][256];
};

Tables MakeTables() {
  Tables tables;
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kReflectedPolynomial : c >> 1;
    tables.t[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (int s = 1; s < 8; ++s) tables.t[s][b] = (tables.t[s - 1][b] >> 8) ^ tables.t[0][tables.t[s - 1][b] & 0xFF];
  }
  return tables;
}

const Tables& GetTables() {
  static const Tables tables = MakeTables();
  return tables;
}

// The CRC register (no pre- or post-inversion) after `size` more bytes.
uint32_t RawTableCrc(uint32_t crc, const unsigned char* p, size_t size) {
  const Tables& tb = GetTables();
  while (size >= 8) {
    uint32_t low, high;
    std::memcpy(&low, p, 4);
    std::memcpy(&high, p + 4, 4);
    low ^= crc;  // little-endian hosts (x86-64, aarch64 Linux)
    crc = tb.t[7][low & 0xFF] ^ tb.t[6][(low >> 8) & 0xFF] ^ tb.t[5][(low >> 16) & 0xFF] ^ tb.t[4][low >> 24] ^
          tb.t[3][high & 0xFF] ^ tb.t[2][(high >> 8) & 0xFF] ^ tb.t[1][(high >> 16) & 0xFF] ^ tb.t[0][high >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) crc = tb.t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)

// x^n mod P in normal (non-reflected) bit order: bit d is the coefficient of x^d.
uint32_t XPowModP(int n) {
  constexpr uint64_t kPolynomial = 0x104C11DB7ull;  // x^32 + ... (normal order)
  uint64_t r = 1;
  for (int i = 0; i < n; ++i) {
    r <<= 1;
    if (r & (uint64_t{1} << 32)) r ^= kPolynomial;
  }
  return static_cast<uint32_t>(r);
}

// A constant k (degree < 32) as the 64-bit lane that, multiplied carry-less
// with a reflected 64-bit lane, yields the product as a reflected 128-bit
// block: the coefficient of x^d goes to bit 63 - d. Using x^(n-1) instead of
// x^n absorbs the one-bit offset of reflected carry-less products.
uint64_t Reflected(uint32_t k) {
  uint64_t out = 0;
  for (int d = 0; d < 32; ++d) {
    if (k & (1u << d)) out |= uint64_t{1} << (63 - d);
  }
  return out;
}

struct FoldConstants {
  // Lane 0 multiplies the block's first 8 bytes (the high-degree half), lane 1 its last 8.
  __m128i by_512;
  __m128i by_128;
};

// Folding a 128-bit block forward by `distance` bits multiplies it by
// x^distance: its first half (degrees 64..127 of the block) by
// x^(distance + 64), its second half by x^distance.
__m128i MakeFold(int distance) {
  const uint64_t first = Reflected(XPowModP(distance + 64 - 1));
  const uint64_t second = Reflected(XPowModP(distance - 1));
  return _mm_set_epi64x(static_cast<long long>(second), static_cast<long long>(first));
}

bool HasPclmul() {
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & bit_PCLMUL) != 0 && (ecx & bit_SSE4_1) != 0;
}

__attribute__((target("pclmul,sse4.1"))) inline __m128i Fold(__m128i block, __m128i constants) {
  return _mm_xor_si128(_mm_clmulepi64_si128(block, constants, 0x00), _mm_clmulepi64_si128(block, constants, 0x11));
}

// The 128-bit accumulator `x` folded over the remaining whole 16-byte blocks,
// then the last block and the tail through the tables.
__attribute__((target("pclmul,sse4.1"))) uint32_t FinishFolds(__m128i x, const unsigned char* p, size_t size,
                                                                __m128i by_128) {
  while (size >= 16) {
    x = _mm_xor_si128(Fold(x, by_128), _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    p += 16;
    size -= 16;
  }
  unsigned char last[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(last), x);
  return RawTableCrc(RawTableCrc(0, last, 16), p, size);
}

const FoldConstants& Constants() {
  static const FoldConstants constants{MakeFold(512), MakeFold(128)};
  return constants;
}

// Needs size >= 64.
__attribute__((target("pclmul,sse4.1"))) uint32_t PclmulCrc(uint32_t crc, const unsigned char* p, size_t size) {
  const FoldConstants& constants = Constants();
  auto load = [](const unsigned char* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  // The register's start value joins the message's first four bytes.
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  p += 64;
  size -= 64;
  while (size >= 64) {
    x0 = _mm_xor_si128(Fold(x0, constants.by_512), load(p));
    x1 = _mm_xor_si128(Fold(x1, constants.by_512), load(p + 16));
    x2 = _mm_xor_si128(Fold(x2, constants.by_512), load(p + 32));
    x3 = _mm_xor_si128(Fold(x3, constants.by_512), load(p + 48));
    p += 64;
    size -= 64;
  }
  __m128i x = _mm_xor_si128(Fold(x0, constants.by_128), x1);
  x = _mm_xor_si128(Fold(x, constants.by_128), x2);
  x = _mm_xor_si128(Fold(x, constants.by_128), x3);
  return FinishFolds(x, p, size, constants.by_128);
}

constexpr int kWideAccumulators = 8;
constexpr size_t kWideStepBytes = kWideAccumulators * 32;

bool HasVpclmul() {
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  constexpr unsigned kOsxsave = 1u << 27, kAvx = 1u << 28;
  if ((ecx & kOsxsave) == 0 || (ecx & kAvx) == 0 || !HasPclmul()) return false;
  unsigned xcr0_low, xcr0_high;
  __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if ((xcr0_low & 0x6) != 0x6) return false;  // the OS saves XMM and YMM state
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  constexpr unsigned kAvx2 = 1u << 5, kVpclmulqdq = 1u << 10;
  return (ebx & kAvx2) != 0 && (ecx & kVpclmulqdq) != 0;
}

__attribute__((target("avx2,vpclmulqdq,pclmul,sse4.1"))) inline __m256i WideFold(__m256i block, __m256i constants) {
  return _mm256_xor_si256(_mm256_clmulepi64_epi128(block, constants, 0x00),
                          _mm256_clmulepi64_epi128(block, constants, 0x11));
}

__attribute__((target("avx2"))) inline __m256i WideLoad(const unsigned char* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Needs size >= kWideStepBytes.
__attribute__((target("avx2,vpclmulqdq,pclmul,sse4.1"))) uint32_t VpclmulCrc(uint32_t crc, const unsigned char* p,
                                                                                size_t size) {
  static const __m128i by_step = MakeFold(static_cast<int>(kWideStepBytes * 8));
  const __m256i fold_step = _mm256_broadcastsi128_si256(by_step);
  __m256i x[kWideAccumulators];
  for (int i = 0; i < kWideAccumulators; ++i) x[i] = WideLoad(p + 32 * i);
  x[0] = _mm256_xor_si256(x[0], _mm256_zextsi128_si256(_mm_cvtsi32_si128(static_cast<int>(crc))));
  p += kWideStepBytes;
  size -= kWideStepBytes;
  while (size >= kWideStepBytes) {
    for (int i = 0; i < kWideAccumulators; ++i) x[i] = _mm256_xor_si256(WideFold(x[i], fold_step), WideLoad(p + 32 * i));
    p += kWideStepBytes;
    size -= kWideStepBytes;
  }
  // The accumulators' 128-bit halves, in message order, folded into one.
  const __m128i by_128 = Constants().by_128;
  __m128i folded = _mm256_castsi256_si128(x[0]);
  folded = _mm_xor_si128(Fold(folded, by_128), _mm256_extracti128_si256(x[0], 1));
  for (int i = 1; i < kWideAccumulators; ++i) {
    folded = _mm_xor_si128(Fold(folded, by_128), _mm256_castsi256_si128(x[i]));
    folded = _mm_xor_si128(Fold(folded, by_128), _mm256_extracti128_si256(x[i], 1));
  }
  return FinishFolds(folded, p, size, by_128);
}

constexpr int kWide512Accumulators = 8;
constexpr size_t kWide512StepBytes = kWide512Accumulators * 64;

bool HasAvx512Vpclmul() {
  if (!HasVpclmul()) return false;  // also checks OSXSAVE, AVX2 and PCLMULQDQ
  unsigned xcr0_low, xcr0_high;
  __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if ((xcr0_low & 0xE6) != 0xE6) return false;  // the OS saves opmask and ZMM state too
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  constexpr unsigned kAvx512f = 1u << 16, kAvx512vl = 1u << 31;
  return (ebx & kAvx512f) != 0 && (ebx & kAvx512vl) != 0;
}

#define DCPLAN_AVX512_TARGET __attribute__((target("avx512f,avx512vl,vpclmulqdq,avx2,pclmul,sse4.1")))

// block * constants (both halves) + next, in two multiplications and one
// three-way XOR.
DCPLAN_AVX512_TARGET inline __m512i Fold512(__m512i block, __m512i constants, __m512i next) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(block, constants, 0x00),
                                   _mm512_clmulepi64_epi128(block, constants, 0x11), next, 0x96);
}

DCPLAN_AVX512_TARGET inline __m512i Load512(const unsigned char* p) { return _mm512_loadu_si512(p); }

struct Fold512Constants {
  __m512i by_step;
  // by_accumulator[i]: accumulator i folded onto the last one, (7 - i) * 64 bytes on.
  __m512i by_accumulator[kWide512Accumulators - 1];
  // by_lane[j]: 128-bit lane j of the last accumulator onto its lane 3, (3 - j) * 16 bytes on.
  __m128i by_lane[3];
};

DCPLAN_AVX512_TARGET Fold512Constants MakeFold512Constants() {
  Fold512Constants constants;
  constants.by_step = _mm512_broadcast_i32x4(MakeFold(static_cast<int>(kWide512StepBytes * 8)));
  for (int i = 0; i + 1 < kWide512Accumulators; ++i) {
    constants.by_accumulator[i] = _mm512_broadcast_i32x4(MakeFold((kWide512Accumulators - 1 - i) * 64 * 8));
  }
  for (int j = 0; j < 3; ++j) constants.by_lane[j] = MakeFold((3 - j) * 16 * 8);
  return constants;
}

// Needs size >= kWide512StepBytes.
DCPLAN_AVX512_TARGET uint32_t Vpclmul512Crc(uint32_t crc, const unsigned char* p, size_t size) {
  static const Fold512Constants constants = MakeFold512Constants();
  __m512i x[kWide512Accumulators];
  for (int i = 0; i < kWide512Accumulators; ++i) x[i] = Load512(p + 64 * i);
  x[0] = _mm512_xor_si512(x[0], _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(crc))));
  p += kWide512StepBytes;
  size -= kWide512StepBytes;
  while (size >= kWide512StepBytes) {
    for (int i = 0; i < kWide512Accumulators; ++i) x[i] = Fold512(x[i], constants.by_step, Load512(p + 64 * i));
    p += kWide512StepBytes;
    size -= kWide512StepBytes;
  }
  __m512i last = x[kWide512Accumulators - 1];
  for (int i = 0; i + 1 < kWide512Accumulators; ++i) last = Fold512(x[i], constants.by_accumulator[i], last);
  __m128i folded = _mm512_extracti32x4_epi32(last, 3);
  folded = _mm_ternarylogic_epi64(Fold(_mm512_castsi512_si128(last), constants.by_lane[0]),
                                  Fold(_mm512_extracti32x4_epi32(last, 1), constants.by_lane[1]), folded, 0x96);
  folded = _mm_xor_si128(Fold(_mm512_extracti32x4_epi32(last, 2), constants.by_lane[2]), folded);
  return FinishFolds(folded, p, size, Constants().by_128);
}

#undef DCPLAN_AVX512_TARGET

Crc32Path Detect() {
  if (HasAvx512Vpclmul()) return Crc32Path::kVpclmul512;
  if (HasVpclmul()) return Crc32Path::kVpclmul256;
  if (HasPclmul()) return Crc32Path::kPclmul128;
  return Crc32Path::kTable;
}

// The register after `size` more bytes, with `path` if it can take them.
uint32_t RawCrc(Crc32Path path, uint32_t crc, const unsigned char* p, size_t size) {
  switch (path) {
    case Crc32Path::kVpclmul512:
      if (size >= kWide512StepBytes) return Vpclmul512Crc(crc, p, size);
      [[fallthrough]];
    case Crc32Path::kVpclmul256:
      if (size >= kWideStepBytes) return VpclmulCrc(crc, p, size);
      [[fallthrough]];
    case Crc32Path::kPclmul128:
      if (size >= 64) return PclmulCrc(crc, p, size);
      [[fallthrough]];
    case Crc32Path::kTable:
      break;
  }
  return RawTableCrc(crc, p, size);
}

#else

Crc32Path Detect() { return Crc32Path::kTable; }
uint32_t RawCrc(Crc32Path, uint32_t crc, const unsigned char* p, size_t size) { return RawTableCrc(crc, p, size); }

#endif  // __x86_64__

// The CRC register as a polynomial (reflected) times x, mod P.
uint32_t TimesX(uint32_t v) { return (v & 1) ? (v >> 1) ^ kReflectedPolynomial : v >> 1; }

uint32_t MultiplyModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t coefficient = uint32_t{1} << 31; coefficient != 0 && a != 0; coefficient >>= 1) {
    if (a & coefficient) {
      product ^= b;
      a ^= coefficient;
    }
    b = TimesX(b);
  }
  return product;
}

}  // namespace

uint32_t Crc32Portable(uint32_t crc, const void* data, size_t size) {
  return ~RawTableCrc(~crc, static_cast<const unsigned char*>(data), size);
}

Crc32Path Crc32ChosenPath() {
  static const Crc32Path chosen = Detect();
  return chosen;
}

// Paths up to the detected one are available: each detection implies the next one down.
bool Crc32PathAvailable(Crc32Path path) { return static_cast<int>(path) <= static_cast<int>(Crc32ChosenPath()); }

uint32_t Crc32With(Crc32Path path, uint32_t crc, const void* data, size_t size) {
  if (!Crc32PathAvailable(path)) path = Crc32Path::kTable;
  return ~RawCrc(path, ~crc, static_cast<const unsigned char*>(data), size);
}

uint32_t Crc32(uint32_t crc, const void* data, size_t size) {
  return ~RawCrc(Crc32ChosenPath(), ~crc, static_cast<const unsigned char*>(data), size);
}

const char* Crc32PathName(Crc32Path path) {
  switch (path) {
    case Crc32Path::kVpclmul512: return "vpclmulqdq-512";
    case Crc32Path::kVpclmul256: return "vpclmulqdq-256";
    case Crc32Path::kPclmul128: return "pclmulqdq-128";
    case Crc32Path::kTable: break;
  }
  return "table";
}

const char* Crc32Implementation() { return Crc32PathName(Crc32ChosenPath()); }

uint32_t Crc32Around(const void* before, size_t before_size, uint32_t middle_crc, uint64_t middle_size,
                     const void* after, size_t after_size) {
  return Crc32(Crc32Combine(Crc32(0, before, before_size), middle_crc, middle_size), after, after_size);
}

uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t size_b) {
  uint32_t power = uint32_t{1} << 23;           // x^8: one byte
  uint32_t shift = uint32_t{1} << 31;           // x^0
  for (; size_b != 0; size_b >>= 1) {
    if (size_b & 1) shift = MultiplyModP(shift, power);
    power = MultiplyModP(power, power);
  }
  return MultiplyModP(crc_a, shift) ^ crc_b;
}

}  // namespace dcplan::internal
