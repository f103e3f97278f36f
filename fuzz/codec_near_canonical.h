#ifndef DCPLAN_FUZZ_CODEC_NEAR_CANONICAL_H_
#define DCPLAN_FUZZ_CODEC_NEAR_CANONICAL_H_

// Near-canonical codec messages: each is a valid message but for one
// non-canonical detail (engine/codec.h) that the decoder must reject. A
// decoder that accepted one would decode a value whose encoding differs from
// the input, which codec_fuzzer reports; as seeds of its corpus they make the
// fuzz replay reach every canonicality check. Built byte by byte from the
// layouts of engine/internal/codec_body.h.

#include <string>
#include <vector>

namespace dcplan::fuzzing {

struct NearCanonical {
  const char* name;  // also the seed's file name
  char selector;     // codec_fuzzer's selector: 0 SavePlan, 1 LoadPlan
  std::string message;
  const char* rejected_because;  // a part of the decoder's error message
};

std::vector<NearCanonical> NearCanonicalMessages();

}  // namespace dcplan::fuzzing

#endif  // DCPLAN_FUZZ_CODEC_NEAR_CANONICAL_H_
