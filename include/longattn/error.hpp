// The one exception type of longattn's public API (DESIGN.md §5).
#pragma once

#include <stdexcept>
#include <string>

#include "longattn/export.hpp"

namespace longattn {

// Thrown by every public entry point before it writes anything. The message names the
// argument, the value that was expected and the value that was given.
class LONGATTN_API Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace longattn
