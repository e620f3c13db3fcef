#include "tools/npy.hpp"

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

Array parse(const std::vector<char>& file, const std::string& name) {
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
  const std::size_t have = file.size() - offset - header_len;
  if (have != static_cast<std::size_t>(data_bytes)) {
    fail(name, "expected " + std::to_string(data_bytes) + " bytes of data for the shape, got " +
                   std::to_string(have));
  }
  a.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(offset + header_len), file.end());
  return a;
}

Array load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::vector<char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse(file, path);
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
