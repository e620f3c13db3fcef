#include "tools/npy.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>

#include "longattn/error.hpp"

namespace longattn::npy {
namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw Error(name + ": " + what);
}

std::int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "<f4" || dtype == "<i4") return 4;
  if (dtype == "<f8" || dtype == "<i8") return 8;
  if (dtype == "<u2") return 2;
  if (dtype == "|u1" || dtype == "|b1" || dtype == "|i1") return 1;
  return 0;
}

std::string field(const std::string& header, const std::string& key, const std::string& pattern,
                  const std::string& name) {
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'" + key + "'\\s*:\\s*" + pattern))) {
    fail(name, "header has no valid '" + key + "' entry: " + header);
  }
  return m[1].str();
}

}  // namespace

std::int64_t Array::size() const {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

template <class T>
std::vector<T> Array::values() const {
  std::vector<T> out(static_cast<std::size_t>(size()));
  auto convert = [&](auto tag) {
    using Src = decltype(tag);
    for (std::size_t i = 0; i < out.size(); ++i) {
      Src x;
      std::memcpy(&x, bytes.data() + i * sizeof(Src), sizeof(Src));
      out[i] = static_cast<T>(x);
    }
  };
  if (dtype == "<f4") convert(float{});
  else if (dtype == "<f8") convert(double{});
  else if (dtype == "<i4") convert(std::int32_t{});
  else if (dtype == "<i8") convert(std::int64_t{});
  else if (dtype == "<u2") convert(std::uint16_t{});
  else if (dtype == "|u1" || dtype == "|b1") convert(std::uint8_t{});
  else if (dtype == "|i1") convert(std::int8_t{});
  else throw Error("npy: unsupported dtype " + dtype);
  return out;
}

template std::vector<float> Array::values<float>() const;
template std::vector<double> Array::values<double>() const;
template std::vector<std::int64_t> Array::values<std::int64_t>() const;
template std::vector<std::uint8_t> Array::values<std::uint8_t>() const;

namespace {

// The header of a file of `file_size` bytes whose first bytes are `file`: dtype and shape,
// checked against the data size; data_offset: where the elements start.
Array parse_header(const std::vector<char>& file, std::size_t file_size, const std::string& name,
                   std::size_t& data_offset) {
  static constexpr char kMagic[] = "\x93NUMPY";
  if (file.size() < 10 || std::memcmp(file.data(), kMagic, 6) != 0) {
    fail(name, "not a .npy file (expected the magic \\x93NUMPY)");
  }
  const int major = static_cast<unsigned char>(file[6]);
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(file[8]) | static_cast<unsigned char>(file[9]) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (file.size() < 12) fail(name, "truncated header");
    for (int i = 0; i < 4; ++i) header_len |= std::size_t(static_cast<unsigned char>(file[8 + i])) << (8 * i);
    offset = 12;
  } else {
    fail(name, "unsupported .npy version " + std::to_string(major) + " (expected 1, 2 or 3)");
  }
  if (file.size() < offset + header_len) fail(name, "truncated header");
  const std::string header(file.data() + offset, header_len);

  Array a;
  a.dtype = field(header, "descr", "'([^']*)'", name);
  if (field(header, "fortran_order", "(True|False)", name) == "True") {
    fail(name, "Fortran order is not supported (expected C order)");
  }
  const std::string shape = field(header, "shape", "\\(([0-9,\\s]*)\\)", name);
  std::regex number("[0-9]+");
  const std::int64_t elem = dtype_bytes(a.dtype);
  if (elem == 0) fail(name, "unsupported dtype " + a.dtype);
  // The data must fit in the file, so any shape whose byte count overflows is malformed.
  std::int64_t data_bytes = elem;
  for (auto it = std::sregex_iterator(shape.begin(), shape.end(), number); it != std::sregex_iterator(); ++it) {
    const std::string digits = it->str();
    const std::int64_t dim = digits.size() > 18 ? -1 : std::stoll(digits);
    if (dim < 0 || __builtin_mul_overflow(data_bytes, dim, &data_bytes)) {
      fail(name, "shape (" + shape + ") describes more data than any file holds");
    }
    a.shape.push_back(dim);
  }
  const std::size_t have = file_size - offset - header_len;
  if (have != static_cast<std::size_t>(data_bytes)) {
    fail(name, "expected " + std::to_string(data_bytes) + " bytes of data for the shape, got " +
                   std::to_string(have));
  }
  data_offset = offset + header_len;
  return a;
}

}  // namespace

Array parse(const std::vector<char>& file, const std::string& name) {
  std::size_t data_offset = 0;
  Array a = parse_header(file, file.size(), name, data_offset);
  a.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(data_offset), file.end());
  return a;
}

Array load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::vector<char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse(file, path);
}

namespace {

// The header of an open file; data_offset: where its elements start.
Array read_header(std::ifstream& in, const std::string& path, std::size_t& data_offset) {
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::size_t>(in.tellg());
  // A header holds at most 12 + 65535 bytes in version 1, and a few hundred in practice in 2 and 3.
  std::vector<char> head(std::min<std::size_t>(file_size, 1 << 20));
  in.seekg(0).read(head.data(), static_cast<std::streamsize>(head.size()));
  return parse_header(head, file_size, path, data_offset);
}

}  // namespace

Array load_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::size_t data_offset = 0;
  return read_header(in, path, data_offset);
}

Array load_rows(const std::string& path, std::size_t axis, std::span<const std::array<std::int64_t, 2>> segments) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::size_t data_offset = 0;
  Array a = read_header(in, path, data_offset);
  if (axis >= a.shape.size()) fail(path, "expected an axis " + std::to_string(axis) + " to take rows of");
  const std::int64_t n = a.shape[axis], elem = dtype_bytes(a.dtype);
  std::int64_t outer = 1, inner = elem, rows = 0;
  for (std::size_t d = 0; d < axis; ++d) outer *= a.shape[d];
  for (std::size_t d = axis + 1; d < a.shape.size(); ++d) inner *= a.shape[d];
  for (const auto& [start, length] : segments) {
    if (start < 0 || length < 0 || start + length > n) {
      fail(path, "rows " + std::to_string(start) + " ... " + std::to_string(start + length) + " of axis " +
                     std::to_string(axis) + " lie outside its " + std::to_string(n));
    }
    rows += length;
  }
  a.bytes.resize(static_cast<std::size_t>(outer * rows * inner));
  char* to = a.bytes.data();
  for (std::int64_t o = 0; o < outer; ++o)
    for (const auto& [start, length] : segments) {
      in.seekg(static_cast<std::streamoff>(data_offset + static_cast<std::size_t>((o * n + start) * inner)));
      in.read(to, static_cast<std::streamsize>(length * inner));
      to += length * inner;
    }
  if (!in) fail(path, "read failed");
  a.shape[axis] = rows;
  return a;
}

void save(const std::string& path, const std::string& dtype, const std::vector<std::int64_t>& shape,
          const void* data) {
  const std::int64_t elem = dtype_bytes(dtype);
  if (elem == 0) throw Error("npy: cannot write dtype " + dtype);
  std::string dims;
  std::int64_t count = 1;
  for (auto s : shape) {
    dims += std::to_string(s) + ", ";
    count *= s;
  }
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(2, 3)" but "(4,)"
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Pad with spaces so the data starts on a 64-byte boundary, newline last.
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot write");
  const std::uint16_t len = static_cast<std::uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff)).put(static_cast<char>(len >> 8));
  out << header;
  out.write(static_cast<const char*>(data), count * elem);
  if (!out) throw Error(path + ": write failed");
}

}  // namespace longattn::npy
