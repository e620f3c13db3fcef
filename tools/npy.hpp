// Reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0, C order).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace longattn::npy {

struct Array {
  std::string dtype;  // NumPy descr, e.g. "<f4", "<f8", "<i8", "|u1"
  std::vector<std::int64_t> shape;
  std::vector<char> bytes;  // element data, C order, little-endian

  std::int64_t size() const;
  // The elements converted to T; throws longattn::Error when dtype is not one of
  // <f4 <f8 <i4 <i8 |u1 <u2 |b1.
  template <class T>
  std::vector<T> values() const;
};

// Parses a whole .npy file image; `name` appears in error messages. Throws longattn::Error
// for a truncated or malformed header, Fortran order, or a data size that disagrees.
Array parse(const std::vector<char>& file, const std::string& name);
Array load(const std::string& path);
// The dtype and shape alone (no bytes), the file's data size checked.
Array load_header(const std::string& path);
// Only the rows of `axis` that the {start, length} segments name, in their order (the array's
// shape then holds their total along `axis`): a process's share of a file too large for one.
Array load_rows(const std::string& path, std::size_t axis, std::span<const std::array<std::int64_t, 2>> segments);

// Writes a C-order array; dtype "<f4" or "<f8" with data of that type.
void save(const std::string& path, const std::string& dtype, const std::vector<std::int64_t>& shape,
          const void* data);

}  // namespace longattn::npy
