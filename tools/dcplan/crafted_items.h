#ifndef DCPLAN_TOOLS_DCPLAN_CRAFTED_ITEMS_H_
#define DCPLAN_TOOLS_DCPLAN_CRAFTED_ITEMS_H_

// Tests only: torch.save archives as DCP stores its items, built by hand so
// that each can carry exactly one defect (a view outside its storage, a
// storage record of the wrong size, a data.pkl that claims a 4 GiB string or
// stops half-way) that LibTorch's own writer would never produce.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "api/zip_check.h"

namespace dcplan::crafted {

// A float32 tensor as torch._utils._rebuild_tensor_v2 rebuilds it: a view
// (storage_offset, sizes, strides, all in elements) of a storage of
// `storage_numel` elements, whose record data/0 holds `data_bytes` bytes.
struct FloatTensorItem {
  int64_t storage_numel = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  int64_t data_bytes = 0;
};

inline void AppendLittleEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// Pickle opcodes (protocol 2) for a str and a 32-bit int.
inline std::string PickledStr(absl::string_view text) {
  std::string out = "X";
  AppendLittleEndian(out, text.size(), 4);
  return out.append(text.data(), text.size());
}
inline std::string PickledInt(int64_t value) {
  std::string out = "J";
  AppendLittleEndian(out, static_cast<uint32_t>(value), 4);
  return out;
}
inline std::string PickledIntTuple(const std::vector<int64_t>& values) {
  std::string out = "(";
  for (int64_t v : values) out += PickledInt(v);
  return out + "t";
}

// The data.pkl torch.save writes for `item`.
inline std::string FloatTensorPickle(const FloatTensorItem& item) {
  std::string p = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n(";
  p += "(" + PickledStr("storage") + "ctorch\nFloatStorage\n" + PickledStr("0") + PickledStr("cpu") +
       PickledInt(item.storage_numel) + "tQ";
  p += PickledInt(item.storage_offset) + PickledIntTuple(item.sizes) + PickledIntTuple(item.strides);
  p += "\x89" "ccollections\nOrderedDict\n)RtR.";
  return p;
}

// A ZIP archive of stored records (what torch.save writes, without its
// alignment padding), each record's CRC-32 correct.
inline std::string StoredZip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string archive;
  std::string directory;
  for (const auto& [name, data] : records) {
    const uint32_t crc = Crc32(data);
    const auto common = [&](std::string& out) {
      AppendLittleEndian(out, 20, 2);  // version needed
      AppendLittleEndian(out, 0, 2);   // flags
      AppendLittleEndian(out, 0, 2);   // method: stored
      AppendLittleEndian(out, 0, 4);   // time, date
      AppendLittleEndian(out, crc, 4);
      AppendLittleEndian(out, data.size(), 4);
      AppendLittleEndian(out, data.size(), 4);
      AppendLittleEndian(out, name.size(), 2);
      AppendLittleEndian(out, 0, 2);  // extra field length
    };
    directory += "PK\x01\x02";
    AppendLittleEndian(directory, 20, 2);  // version made by
    common(directory);
    AppendLittleEndian(directory, 0, 2);   // comment length
    AppendLittleEndian(directory, 0, 2);   // disk
    AppendLittleEndian(directory, 0, 2);   // internal attributes
    AppendLittleEndian(directory, 0, 4);   // external attributes
    AppendLittleEndian(directory, archive.size(), 4);
    directory += name;
    archive += "PK\x03\x04";
    common(archive);
    archive += name + data;
  }
  const size_t directory_offset = archive.size();
  archive += directory + "PK\x05\x06";
  AppendLittleEndian(archive, 0, 4);  // disk numbers
  AppendLittleEndian(archive, records.size(), 2);
  AppendLittleEndian(archive, records.size(), 2);
  AppendLittleEndian(archive, directory.size(), 4);
  AppendLittleEndian(archive, directory_offset, 4);
  AppendLittleEndian(archive, 0, 2);  // comment length
  return archive;
}

// A torch.save archive holding `data_pkl` and a storage record data/0 of
// `data_bytes` zero bytes.
inline std::string TorchSaveArchive(const std::string& data_pkl, int64_t data_bytes) {
  return StoredZip({{"archive/data.pkl", data_pkl},
                    {"archive/data/0", std::string(static_cast<size_t>(data_bytes), '\0')},
                    {"archive/version", "3\n"}});
}

inline std::string FloatTensorArchive(const FloatTensorItem& item) {
  return TorchSaveArchive(FloatTensorPickle(item), item.data_bytes);
}

}  // namespace dcplan::crafted

#endif  // DCPLAN_TOOLS_DCPLAN_CRAFTED_ITEMS_H_
