#include "tools/report/crossovers.hpp"

#include <algorithm>
#include <cstdio>

#include "tools/report/scaling_fit.hpp"

namespace longattn::report {
namespace {

std::string whole(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.0f", x);
  return buffer;
}

// Times of both methods at the n both measured, as picked from each point's spread.
struct Paired {
  std::vector<double> n;
  std::vector<const Spread*> a, b;
  std::vector<double> pick(const std::vector<const Spread*>& s, double Spread::*field) const {
    std::vector<double> out;
    for (const Spread* x : s) out.push_back(x->*field);
    return out;
  }
};

Paired paired(const Report& r, const std::string& a, const std::string& b) {
  Paired p;
  for (const Point* x : r.measured(a))
    for (const Point* y : r.measured(b))
      if (x->n == y->n) p.n.push_back(double(x->n)), p.a.push_back(&x->spread), p.b.push_back(&y->spread);
  return p;
}

}  // namespace

std::vector<Crossover> crossovers(const Report& r) {
  std::vector<Crossover> out;
  const auto& methods = r.settings.methods;
  auto has = [&](const std::string& m) { return std::find(methods.begin(), methods.end(), m) != methods.end(); };
  for (const char* attention : {"full", "causal", "window", "linear", "materialized"}) {
    for (const char* other : {"rnn", "lstm", "cnn"}) {
      if (!has(attention) || !has(other)) continue;
      const Paired p = paired(r, attention, other);
      if (p.n.empty()) continue;
      Crossover c{attention, other};
      c.n_first = p.n.front(), c.n_last = p.n.back();
      const auto a = p.pick(p.a, &Spread::median), b = p.pick(p.b, &Spread::median);
      if (const auto at = crossover(p.n, a, b)) {
        c.at = *at;
        const auto early = crossover(p.n, p.pick(p.a, &Spread::high), p.pick(p.b, &Spread::low));
        const auto late = crossover(p.n, p.pick(p.a, &Spread::low), p.pick(p.b, &Spread::high));
        c.before_first = !early, c.beyond_last = !late;
        c.earliest = early ? std::min(*early, c.at) : c.n_first;
        c.latest = late ? std::max(*late, c.at) : c.n_last;
      } else {
        c.kind = a.front() > b.front() && a.back() > b.back() ? Crossover::always_slower : Crossover::always_faster;
      }
      out.push_back(c);
    }
  }
  return out;
}

std::string sentence(const Crossover& c) {
  const std::string A = theory_of(c.attention).label, B = theory_of(c.other).label;
  switch (c.kind) {
    case Crossover::crosses:
      return A + " is faster than the " + B + " up to n ≈ " + whole(c.at) + " (" +
             (c.before_first ? "< " : "") + whole(c.earliest) + "–" + (c.beyond_last ? "> " : "") + whole(c.latest) +
             ") and slower beyond it.";
    case Crossover::always_slower:
      return A + " is slower than the " + B + " at every n measured (" + whole(c.n_first) + " … " + whole(c.n_last) + ").";
    case Crossover::always_faster:
      return A + " stays faster than the " + B + " up to n = " + whole(c.n_last) + ", the largest n measured.";
  }
  return {};
}

nlohmann::json to_json(const Crossover& c) {
  nlohmann::json j = {{"attention", c.attention}, {"other", c.other}, {"sentence", sentence(c)}};
  if (c.kind == Crossover::crosses) {
    j["n"] = c.at;
    j["low"] = c.before_first ? nlohmann::json(nullptr) : nlohmann::json(c.earliest);
    j["high"] = c.beyond_last ? nlohmann::json(nullptr) : nlohmann::json(c.latest);
  } else {
    j["n"] = nullptr;
  }
  return j;
}

std::string crossover_sentences(const Report& r) {
  std::string text;
  for (const Crossover& c : crossovers(r)) text += "- " + sentence(c) + "\n";
  return text;
}

}  // namespace longattn::report
