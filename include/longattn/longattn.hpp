// Everything a user of longattn includes.
#pragma once

#include "longattn/attention.hpp"
#include "longattn/bf16.hpp"
#include "longattn/error.hpp"
#include "longattn/kv_cache.hpp"
#include "longattn/machine.hpp"
#include "longattn/multi_head.hpp"
#include "longattn/options.hpp"
#include "longattn/plan.hpp"
#include "longattn/positional.hpp"
#include "longattn/tensor_view.hpp"
#include "longattn/version.hpp"
