#ifndef DCPLAN_API_INTERNAL_CRC32_H_
#define DCPLAN_API_INTERNAL_CRC32_H_

// CRC-32 as ZIP (and zlib's crc32()) define it: polynomial 0xEDB88320
// (reflected), pre- and post-inverted, so that
// Crc32(Crc32(0, a), b) == Crc32(0, a + b) and
// Crc32(0, "123456789") == 0xCBF43926. torch.save archives record it for
// every record; dcplan computes it when writing archives, records the CRC-32
// of every stored item in `.dcplan_checksums` (derived with Crc32Combine from
// the ZIP's own, without a second pass) and checks both on load and in
// `dcplan verify`.

#include <cstddef>
#include <cstdint>

namespace dcplan::internal {

// Folds 512 bits at a time with VPCLMULQDQ on AVX-512 registers when the
// CPU (and OS) support AVX-512F/VL and VPCLMULQDQ, else 256 bits on AVX2
// registers, else 128 bits with PCLMULQDQ (x86-64), else tables eight bytes
// at a time. The choice is made once, at the first call.
uint32_t Crc32(uint32_t crc, const void* data, size_t size);

// The ways Crc32 can compute, fastest last.
enum class Crc32Path { kTable, kPclmul128, kVpclmul256, kVpclmul512 };

// Whether this CPU (and OS) can run `path`; kTable always.
bool Crc32PathAvailable(Crc32Path path);

// Crc32 computed with `path` (same result), for tests and benchmarks: the
// table algorithm where the CPU lacks the path, or for inputs too short for
// it.
uint32_t Crc32With(Crc32Path path, uint32_t crc, const void* data, size_t size);

// The table-driven algorithm alone: the reference the fast paths are tested
// against.
uint32_t Crc32Portable(uint32_t crc, const void* data, size_t size);

// Which path Crc32 uses on this CPU, and the paths' names:
// "vpclmulqdq-512", "vpclmulqdq-256", "pclmulqdq-128" or "table".
Crc32Path Crc32ChosenPath();
const char* Crc32PathName(Crc32Path path);
const char* Crc32Implementation();

// The CRC-32 of the concatenation a + b from crc_a = Crc32(0, a),
// crc_b = Crc32(0, b) and b's length, without the bytes:
// crc_a * x^(8 * size_b) + crc_b mod P, in O(log size_b) steps.
uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t size_b);

// The CRC-32 of before + middle + after, where only the middle part's CRC-32
// and size are known (a tensor's bytes, CRC'd once as they streamed by).
uint32_t Crc32Around(const void* before, size_t before_size, uint32_t middle_crc, uint64_t middle_size,
                     const void* after, size_t after_size);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_CRC32_H_
