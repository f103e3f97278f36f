#include "api/internal/tensor_pickle.h"

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "api/internal/torch_compat.h"
#include "engine/dtype.h"

namespace dcplan::internal {
namespace {

// Protocol-2 opcodes used here.
constexpr char kProto = '\x80';
constexpr char kGlobal = 'c';
constexpr char kMark = '(';
constexpr char kTuple = 't';
constexpr char kEmptyTuple = ')';
constexpr char kBinPersId = 'Q';
constexpr char kBinUnicode = 'X';
constexpr char kBinInt = 'J';
constexpr char kLong1 = '\x8a';
constexpr char kNewFalse = '\x89';
constexpr char kReduce = 'R';
constexpr char kStop = '.';

class PickleBuilder {
 public:
  PickleBuilder() { out_ += {kProto, '\x02'}; }
  void Op(char op) { out_ += op; }
  void Global(absl::string_view module, absl::string_view name) {
    out_ += kGlobal;
    absl::StrAppend(&out_, module, "\n", name, "\n");
  }
  void String(absl::string_view s) {
    out_ += kBinUnicode;
    AppendLittleEndian(static_cast<uint32_t>(s.size()), 4);
    out_.append(s.data(), s.size());
  }
  void Int(int64_t v) {
    if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      out_ += kBinInt;
      AppendLittleEndian(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
      return;
    }
    out_ += kLong1;
    out_ += '\x08';
    AppendLittleEndian(static_cast<uint64_t>(v), 8);
  }
  void IntTuple(c10::IntArrayRef values) {
    if (values.empty()) {
      Op(kEmptyTuple);
      return;
    }
    Op(kMark);
    for (int64_t v : values) Int(v);
    Op(kTuple);
  }
  std::string Finish() {
    out_ += kStop;
    return std::move(out_);
  }

 private:
  void AppendLittleEndian(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  std::string out_;
};

}  // namespace

absl::StatusOr<absl::string_view> StorageClassName(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Double: return "DoubleStorage";
    case c10::ScalarType::Float: return "FloatStorage";
    case c10::ScalarType::Half: return "HalfStorage";
    case c10::ScalarType::BFloat16: return "BFloat16Storage";
    case c10::ScalarType::ComplexFloat: return "ComplexFloatStorage";
    case c10::ScalarType::ComplexDouble: return "ComplexDoubleStorage";
    case c10::ScalarType::Long: return "LongStorage";
    case c10::ScalarType::Int: return "IntStorage";
    case c10::ScalarType::Short: return "ShortStorage";
    case c10::ScalarType::Char: return "CharStorage";
    case c10::ScalarType::Byte: return "ByteStorage";
    case c10::ScalarType::Bool: return "BoolStorage";
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype ", c10::toString(dtype), " has no torch.save storage class dcplan can write"));
  }
}

absl::StatusOr<std::string> TensorDataPickle(const at::Tensor& tensor) {
  // Dtypes with a legacy storage class are rebuilt by _rebuild_tensor_v2 from
  // a typed storage of `numel` elements; the others (float8, uint16/32/64)
  // by _rebuild_tensor_v3 from an untyped storage of `numel` bytes, with the
  // dtype as an extra argument, as torch.save writes them.
  absl::StatusOr<absl::string_view> storage_class = StorageClassName(tensor.scalar_type());
  const bool typed = storage_class.ok();
  absl::StatusOr<DType> untyped_dtype = DTypeFromScalarType(tensor.scalar_type());
  // Quantized tensors are pickled another way (_rebuild_qtensor); on
  // LibTorch 1.13 the legacy classes are all dcplan writes.
  if (!typed && (!DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED || !untyped_dtype.ok() ||
                 c10::isQIntType(tensor.scalar_type()))) {
    return storage_class.status();
  }
  const int64_t storage_bytes = static_cast<int64_t>(tensor.storage().nbytes());
  const int64_t storage_numel = typed ? storage_bytes / tensor.element_size() : storage_bytes;

  PickleBuilder p;
  p.Global("torch._utils", typed ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3");
  p.Op(kMark);
  // The storage, as a persistent id.
  p.Op(kMark);
  p.String("storage");
  if (typed) {
    p.Global("torch", *storage_class);
  } else {
    p.Global("torch.storage", "UntypedStorage");
  }
  p.String("0");
  p.String("cpu");
  p.Int(storage_numel);
  p.Op(kTuple);
  p.Op(kBinPersId);
  p.Int(tensor.storage_offset());
  p.IntTuple(tensor.sizes());
  p.IntTuple(tensor.strides());
  p.Op(kNewFalse);  // requires_grad: DCP writes detached tensors
  p.Global("collections", "OrderedDict");
  p.Op(kEmptyTuple);
  p.Op(kReduce);  // backward hooks: OrderedDict()
  if (!typed) p.Global("torch", DTypeName(*untyped_dtype));
  p.Op(kTuple);
  p.Op(kReduce);
  return p.Finish();
}

}  // namespace dcplan::internal
