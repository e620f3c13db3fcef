#include "tools/heads_file.hpp"

#include "longattn/error.hpp"

namespace longattn::tools {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<float> heads_values(const npy::Array& array, const std::string& file, std::vector<std::int64_t>& shape) {
  if (array.dtype != "<f4") throw Error(file + ": expected dtype float32 (<f4), got " + array.dtype);
  if (array.shape.size() != 4) throw Error(file + ": expected 4 dimensions, got shape " + shape_text(array.shape));
  shape = array.shape;
  return array.values<float>();
}

}  // namespace longattn::tools
