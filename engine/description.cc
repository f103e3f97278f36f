#include "engine/description.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dcplan {

std::ostream& operator<<(std::ostream& os, const ValueDescription& v) {
  if (const auto* whole = std::get_if<WholeTensor>(&v)) {
    return os << "WholeTensor(" << DTypeName(whole->properties.dtype) << ShapeToString(whole->shape) << ")";
  }
  if (const auto* sharded = std::get_if<ShardedTensor>(&v)) {
    return os << "ShardedTensor(" << DTypeName(sharded->properties.dtype) << ShapeToString(sharded->global_shape)
              << ", local_chunks=[" << absl::StrJoin(sharded->local_chunks, ", ", [](std::string* out, const ChunkBox& c) { out->append(ToString(c)); }) << "])";
  }
  const auto& opaque = std::get<OpaqueValue>(v);
  return os << "OpaqueValue(nbytes=" << (opaque.nbytes ? absl::StrCat(*opaque.nbytes) : "unknown") << ")";
}

}  // namespace dcplan
