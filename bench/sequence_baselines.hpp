// The other sequence models of the seeds' comparison, as a user of our dependencies would run
// them: a 1-D convolution (k taps, d → d channels) and a recurrent layer (Elman RNN with tanh,
// or LSTM), both oneDNN primitives created once and executed many times. Batch 1, a sequence
// of n steps of d features.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace longattn::bench {

class SequenceBaseline {
 public:
  virtual ~SequenceBaseline() = default;
  virtual void run() = 0;
  virtual double flops() const = 0;  // multiply-adds counted as 2
};

// kind: "cnn" (kernel taps k), "rnn" or "lstm". Throws longattn::Error on an unknown kind.
std::unique_ptr<SequenceBaseline> make_sequence_baseline(const std::string& kind, std::int64_t n,
                                                         std::int64_t d, std::int64_t k, int threads);

}  // namespace longattn::bench
