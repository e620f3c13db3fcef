// The three schedules of a plan's work (engine/schedule.hpp says which runs when). Each runs
// query blocks through QueryBlocks, so the bits of a block do not depend on the schedule.
#pragma once

#include "engine/flash_inputs.hpp"
#include "engine/run_scratch.hpp"
#include "engine/schedule.hpp"

namespace longattn::engine {

template <class Q, class KV>
void run_key_splits(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch);

template <class Q, class KV>
void run_bands(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch);

template <class Q, class KV>
void run_chunks(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch);

// Explicit instantiations, one line per schedule file, for the three input types.
#define LONGATTN_INSTANTIATE_SCHEDULE(name)                                                       \
  template void name(const FlashInputs<float, float>&, const Schedule&, RunScratch&);            \
  template void name(const FlashInputs<bf16, bf16>&, const Schedule&, RunScratch&);              \
  template void name(const FlashInputs<float, bf16>&, const Schedule&, RunScratch&);

}  // namespace longattn::engine
