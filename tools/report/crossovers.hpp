// Where an attention method stops being faster than convolution or recurrence, with the range
// the points' intervals allow: "n ≈ 487 (410–590)".
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "tools/report/report_data.hpp"

namespace longattn::report {

struct Crossover {
  std::string attention, other;  // method names
  enum Kind { crosses, always_slower, always_faster } kind = crosses;
  double at = 0;                 // kind crosses: interpolated on log-log axes between medians
  double earliest = 0, latest = 0;  // the same with the attention method at its interval's top
                                    // and the other at its bottom, and the other way round
  bool before_first = false, beyond_last = false;  // a bound outside the n measured
  double n_first = 0, n_last = 0;
};

// Every (attention method, cnn / rnn / lstm) pair both measured at some n.
std::vector<Crossover> crossovers(const Report& report);

std::string sentence(const Crossover& c);  // one line of markdown
nlohmann::json to_json(const Crossover& c);

// The crossovers of the report, one sentence each (also in summary.md).
std::string crossover_sentences(const Report& report);

}  // namespace longattn::report
