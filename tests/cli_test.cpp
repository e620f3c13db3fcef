// The `longattn` command line, run as a user runs it: golden cases through `longattn run`,
// every kind of bad input, and a round trip with arrays written by NumPy (when Debian's
// python3-numpy is there).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "longattn/error.hpp"
#include "check/attention_case.hpp"
#include "simd/kernel_table.hpp"
#include "tools/golden_cases.hpp"
#include "tools/npy.hpp"

namespace fs = std::filesystem;
namespace npy = longattn::npy;

namespace {

struct Outcome {
  int exit_code;
  std::string output;  // stdout and stderr
};

Outcome run_cli(const std::string& args) {
  const std::string cmd = std::string(LONGATTN_CLI) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

fs::path scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("longattn_cli_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir;
}

fs::path golden_dir() { return longattn::golden::golden_root(LONGATTN_DEFAULT_GOLDEN_DIR); }

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string npy_header(const std::string& dict) {
  std::string header = dict;
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string file = "\x93NUMPY\x01";
  file += '\0';
  file += static_cast<char>(header.size() & 0xff);
  file += static_cast<char>(header.size() >> 8);
  return file + header;
}

// max |output − expected| and max(1, max |expected|) for a case folder's expected_out.npy.
std::pair<double, double> error_against_expected(const fs::path& output, const fs::path& case_dir) {
  const std::vector<float> out = npy::load(output).values<float>();
  const std::vector<double> expected = npy::load(case_dir / "expected_out.npy").values<double>();
  REQUIRE(out.size() == expected.size());
  double max_expected = 1, worst = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    max_expected = std::max(max_expected, std::abs(expected[i]));
    worst = std::max(worst, std::abs(out[i] - expected[i]));
  }
  return {worst, max_expected};
}

}  // namespace

TEST_CASE("longattn run reproduces the golden cases it supports") {
  const fs::path tmp = scratch_dir();
  int ran = 0;
  for (const fs::path& dir : longattn::golden::case_folders(golden_dir())) {
    if (!longattn::golden::unsupported_feature(dir).empty()) continue;
    std::ifstream in(dir / "case.json");
    const auto c = nlohmann::json::parse(in);
    if (c["op"] != "attention") continue;  // the layer and the table: the next test case
    std::string args = "run --q " + (dir / "q.npy").string() + " --k " + (dir / "k.npy").string() + " --v " +
                       (dir / "v.npy").string() + " --out " + (tmp / "out.npy").string();
    if (c.contains("window")) {
      args += " --window " + std::to_string(c["window"][0].get<int>()) + " " + std::to_string(c["window"][1].get<int>());
    }
    if (c.contains("scale")) args += " --scale " + c["scale"].dump();
    const std::string normalizer = c.value("normalizer", "softmax");
    args += " --normalizer " + normalizer;
    if (c.contains("sigmoid_bias")) args += " --sigmoid-bias " + c["sigmoid_bias"].dump();
    if (normalizer == "softmax") args += " --lse " + (tmp / "lse.npy").string();
    if (fs::exists(dir / "key_lengths.npy")) args += " --key-lengths " + (dir / "key_lengths.npy").string();
    if (fs::exists(dir / "mask.npy")) args += " --mask " + (dir / "mask.npy").string();
    if (fs::exists(dir / "rel_table.npy")) args += " --relative-bias " + (dir / "rel_table.npy").string();
    if (c.value("alibi", false)) args += " --alibi";
    if (c.contains("rope_pairing")) {
      args += " --rope " + c["rope_pairing"].get<std::string>() + " --rope-base " + c.value("rope_base", nlohmann::json(10000.0)).dump();
    }
    if (fs::exists(dir / "additive_w.npy")) {
      args += " --additive " + (dir / "additive_wq.npy").string() + " " + (dir / "additive_wk.npy").string() + " " +
              (dir / "additive_w.npy").string();
    }
    if (c.contains("softcap")) args += " --softcap " + c["softcap"].dump();
    if (c.contains("sink_keys")) args += " --sink-keys " + c["sink_keys"].dump();
    for (const char* name : {"sinks", "cu_seqlens_q", "cu_seqlens_k"}) {
      if (fs::exists(dir / (std::string(name) + ".npy"))) {
        std::string flag = std::string(" --") + name;
        std::replace(flag.begin(), flag.end(), '_', '-');
        args += flag + " " + (dir / (std::string(name) + ".npy")).string();
      }
    }
    CAPTURE(dir.filename().string());
    const Outcome r = run_cli(args);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto [worst, max_expected] = error_against_expected(tmp / "out.npy", dir);
    // large_logits needs the README's second term; the rest meet the first alone.
    CHECK(worst <= (dir.filename() == "large_logits" ? 1e-3 : 1e-5 * max_expected));
    ++ran;
  }
  CHECK(ran >= 35);  // the long-context cases (e_*) among them
  fs::remove_all(tmp);
}

TEST_CASE("longattn run --qk-precision int8: a golden case within the int8 tolerance, or an Error without VNNI") {
  const fs::path tmp = scratch_dir(), dir = golden_dir() / "full_odd_d80";
  const Outcome r = run_cli("run --q " + (dir / "q.npy").string() + " --k " + (dir / "k.npy").string() + " --v " +
                            (dir / "v.npy").string() + " --out " + (tmp / "out.npy").string() + " --qk-precision int8");
  INFO(r.output);
  if (!longattn::check::int8_scores_available()) {  // the path the command runs, LONGATTN_ISA's if set
    CHECK(r.exit_code != 0);
    CHECK(r.output.find("AVX512-VNNI") != std::string::npos);
  } else {
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("int8 q·k") != std::string::npos);
    const auto [worst, max_expected] = error_against_expected(tmp / "out.npy", dir);
    CHECK(worst <= 2e-2 * max_expected);  // README "int8 scores": bf16's rel on out
  }
  fs::remove_all(tmp);
}

TEST_CASE("longattn run --x reproduces the golden multi-head layer cases") {
  const fs::path tmp = scratch_dir();
  int ran = 0;
  for (const fs::path& dir : longattn::golden::case_folders(golden_dir())) {
    std::ifstream in(dir / "case.json");
    const auto c = nlohmann::json::parse(in);
    if (c["op"] != "mha") continue;
    std::string args = "run --x " + (dir / "x.npy").string() + " --out " + (tmp / "y.npy").string();
    for (const char* w : {"wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"}) {
      if (fs::exists(dir / (std::string(w) + ".npy"))) args += std::string(" --") + w + " " + (dir / (std::string(w) + ".npy")).string();
    }
    args += " --heads " + c["heads"].dump() + " --kv-heads " + c.value("kv_heads", c["heads"]).dump();
    args += " --positions " + c.value("positional", std::string("none"));
    if (fs::exists(dir / "pe_table.npy")) args += " --position-table " + (dir / "pe_table.npy").string();
    if (c.contains("window")) args += " --window " + c["window"][0].dump() + " " + c["window"][1].dump();
    if (c.contains("rope_pairing")) args += " --rope " + c["rope_pairing"].get<std::string>();
    if (c.value("alibi", false)) args += " --alibi";
    CAPTURE(dir.filename().string());
    const Outcome r = run_cli(args);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto [worst, max_expected] = error_against_expected(tmp / "y.npy", dir);
    CHECK(worst <= 1e-5 * max_expected);
    ++ran;
  }
  CHECK(ran >= 4);
  // The layer's inputs are checked like the kernel's: one line, exit code 2, nothing written.
  const fs::path case_dir = golden_dir() / "mha_sinusoidal";
  const std::string base = "run --x " + (case_dir / "x.npy").string() + " --out " + (tmp / "y.npy").string();
  fs::remove(tmp / "y.npy");
  for (const auto& [extra, needle] : std::vector<std::pair<std::string, std::string>>{
           {" --heads 4 --wq " + (case_dir / "wq.npy").string(), "--x needs --wo"},
           {" --heads 3 --wq " + (case_dir / "wq.npy").string() + " --wk " + (case_dir / "wk.npy").string() + " --wv " +
                (case_dir / "wv.npy").string() + " --wo " + (case_dir / "wo.npy").string(),
            "heads: expected a divisor of embed_dim (32) when head_dim is 0, got 3"},
           {" --heads 4 --wq " + (case_dir / "bq.npy").string() + " --wk " + (case_dir / "wk.npy").string() + " --wv " +
                (case_dir / "wv.npy").string() + " --wo " + (case_dir / "wo.npy").string(),
            "bq.npy: expected a float32 array [Hq·D, E], got <f4 [32]"},
       }) {
    CAPTURE(extra);
    const Outcome r = run_cli(base + extra);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(needle) != std::string::npos);
    CHECK(!fs::exists(tmp / "y.npy"));
  }
  fs::remove_all(tmp);
}

TEST_CASE("longattn run: each kind of bad input is one clear line, exit code 2, no output") {
  const fs::path tmp = scratch_dir();
  const fs::path q = golden_dir() / "full_tiny" / "q.npy", k = golden_dir() / "full_tiny" / "k.npy",
                 v = golden_dir() / "full_tiny" / "v.npy", out = tmp / "out.npy";
  auto args_with_q = [&](const fs::path& query) {
    return "run --q " + query.string() + " --k " + k.string() + " --v " + v.string() + " --out " + out.string();
  };
  auto expect_failure = [&](const std::string& args, const std::string& needle) {
    CAPTURE(args);
    const Outcome r = run_cli(args);
    CAPTURE(r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(needle) != std::string::npos);
    CHECK(!fs::exists(out));
    CHECK(!fs::exists(out.string() + ".partial"));
  };
  expect_failure(args_with_q(q) + " --frobnicate", "--frobnicate");
  expect_failure(args_with_q(tmp / "missing.npy"), "missing.npy");

  write_bytes(tmp / "garbage.npy", "this is not numpy");
  expect_failure(args_with_q(tmp / "garbage.npy"), "garbage.npy: not a .npy file");
  const std::string good = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 4), }");
  write_bytes(tmp / "truncated_header.npy", good.substr(0, 30));
  expect_failure(args_with_q(tmp / "truncated_header.npy"), "truncated_header.npy: truncated header");
  write_bytes(tmp / "short_data.npy", good + std::string(12, '\0'));
  expect_failure(args_with_q(tmp / "short_data.npy"), "short_data.npy: expected 32 bytes of data for the shape, got 12");
  write_bytes(tmp / "fortran.npy", npy_header("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 2, 4), }") +
                                       std::string(32, '\0'));
  expect_failure(args_with_q(tmp / "fortran.npy"), "fortran.npy: Fortran order is not supported");
  write_bytes(tmp / "doubles.npy", npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 2, 4), }") +
                                       std::string(64, '\0'));
  expect_failure(args_with_q(tmp / "doubles.npy"), "doubles.npy: expected dtype float32 (<f4), got <f8");
  write_bytes(tmp / "flat.npy", npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }") +
                                    std::string(32, '\0'));
  expect_failure(args_with_q(tmp / "flat.npy"), "flat.npy: expected 4 dimensions, got shape [8]");
  expect_failure(args_with_q(fs::path(LONGATTN_SOURCE_DIR) / "tests/fuzz/corpus/npy/huge_shape_dimension.npy"),
                 "describes more data than any file holds");
  // Shapes that disagree between files: the engine names the argument.
  write_bytes(tmp / "wide.npy", npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 5), }") +
                                    std::string(40, '\0'));
  expect_failure(args_with_q(tmp / "wide.npy"), "k.shape[3] (features): expected 5");
  fs::remove_all(tmp);
}

TEST_CASE("longattn golden reports pass or fail per case") {
  const Outcome r = run_cli("golden " + golden_dir().string());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("pass full_tiny") != std::string::npos);
  CHECK(r.output.find(" 0 failed") != std::string::npos);
  // On bf16 inputs: the attention cases pass within the bf16 tolerance, the others are skipped.
  const Outcome half = run_cli("golden " + golden_dir().string() + " --dtype bf16");
  INFO(half.output);
  CHECK(half.exit_code == 0);
  CHECK(half.output.find("pass gqa_8q_2kv") != std::string::npos);
  CHECK(half.output.find("skip mha_rope_gqa") != std::string::npos);
  CHECK(half.output.find(" 0 failed") != std::string::npos);
}

TEST_CASE("arrays written by NumPy round-trip through longattn run") {
  // Debian's python3-numpy serves /usr/bin/python3, which may not be first on PATH.
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"}) {
    if (std::system((std::string(candidate) + " -c 'import numpy' > /dev/null 2>&1").c_str()) == 0) {
      python = candidate;
      break;
    }
  }
  if (python.empty()) {
    MESSAGE("skipped: no python3 with NumPy (Debian's python3-numpy) is installed");
    return;
  }
  const fs::path tmp = scratch_dir();
  const std::string make = python + " - <<'PY'\n"
                           "import numpy as np\n"
                           "rng = np.random.default_rng(3)\n"
                           "d = '" + tmp.string() + "'\n"
                           "for name, shape in (('q', (2, 40, 4, 16)), ('k', (2, 50, 2, 16)), ('v', (2, 50, 2, 8)),\n"
                           "                    ('q2', (1, 2, 200, 16)), ('k2', (1, 1, 300, 16)), ('v2', (1, 1, 300, 8))):\n"
                           "    np.save(f'{d}/{name}.npy', rng.standard_normal(shape, dtype=np.float32))\n"
                           "PY";
  REQUIRE(std::system(make.c_str()) == 0);
  const Outcome r = run_cli("run --layout bnhd --causal --q " + (tmp / "q.npy").string() + " --k " +
                            (tmp / "k.npy").string() + " --v " + (tmp / "v.npy").string() + " --out " +
                            (tmp / "out.npy").string() + " --lse " + (tmp / "lse.npy").string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string check = python + " - <<'PY'\n"
                            "import numpy as np\n"
                            "d = '" + tmp.string() + "'\n"
                            "q, k, v, out = (np.load(f'{d}/{n}.npy').astype(np.float64) for n in ('q', 'k', 'v', 'out'))\n"
                            "q, k, v = (np.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))\n"
                            "k, v = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)\n"
                            "s = q @ np.swapaxes(k, -1, -2) / 4.0\n"
                            "pos = np.arange(40)[:, None] + 10\n"
                            "s = np.where(np.arange(50)[None, :] <= pos, s, -np.inf)\n"
                            "p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)\n"
                            "ref = np.transpose(p @ v, (0, 2, 1, 3))\n"
                            "assert out.shape == ref.shape, out.shape\n"
                            "err = np.abs(out - ref).max()\n"
                            "assert err < 1e-5, err\n"
                            "lse = np.load(f'{d}/lse.npy')\n"  // [B, Hq, Nq] whatever the layout
                            "m = s.max(-1)\n"
                            "ref_lse = m + np.log(np.exp(s - m[..., None]).sum(-1))\n"
                            "assert lse.shape == ref_lse.shape, lse.shape\n"
                            "assert np.abs(lse - ref_lse).max() < 1e-5\n"
                            "PY";
  CHECK(std::system(check.c_str()) == 0);

  // --dtype bf16: the inputs rounded to bf16 (nearest even), enough queries per kv head for
  // the native products where the CPU has them; the bf16 tolerance against float64 on the
  // rounded inputs.
  const Outcome half = run_cli("run --dtype bf16 --q " + (tmp / "q2.npy").string() + " --k " +
                               (tmp / "k2.npy").string() + " --v " + (tmp / "v2.npy").string() + " --out " +
                               (tmp / "out2.npy").string());
  INFO(half.output);
  REQUIRE(half.exit_code == 0);
  CHECK(half.output.find("bf16") != std::string::npos);
  const std::string check_half = python + " - <<'PY'\n"
                                 "import numpy as np\n"
                                 "d = '" + tmp.string() + "'\n"
                                 "def bf16(x):\n"
                                 "    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)\n"
                                 "    u = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)\n"
                                 "    return u.view(np.float32).astype(np.float64)\n"
                                 "q, k, v = (bf16(np.load(f'{d}/{n}2.npy')) for n in ('q', 'k', 'v'))\n"
                                 "out = np.load(f'{d}/out2.npy')\n"
                                 "k, v = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)\n"
                                 "s = q @ np.swapaxes(k, -1, -2) / 4.0\n"
                                 "p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)\n"
                                 "ref = p @ v\n"
                                 "err = np.abs(out - ref).max()\n"
                                 "assert err < 2e-2 * max(1.0, np.abs(ref).max()), err\n"
                                 "PY";
  CHECK(std::system(check_half.c_str()) == 0);
  fs::remove_all(tmp);
}

TEST_CASE("a --quick scaling report runs and its outputs parse") {
  const fs::path tmp = scratch_dir() / "report";
  const Outcome r = run_cli("report --quick --threads 1 --methods cnn,rnn,full,window,materialized --out " + tmp.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("Report written to") != std::string::npos);
  std::ifstream json_file(tmp / "report.json");
  const auto j = nlohmann::json::parse(json_file);
  CHECK(j["points"].size() == 4 * 5);
  for (const auto& p : j["points"]) CHECK(p["measured"].get<bool>());
  std::ifstream csv(tmp / "points.csv");
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  CHECK(lines == 1 + 4 * 5);
  for (const char* svg : {"time.svg", "memory.svg"}) {
    std::ifstream in(tmp / svg);
    std::string head;
    std::getline(in, head);
    CHECK(head.rfind("<svg", 0) == 0);
  }
  fs::remove_all(tmp.parent_path());
}

TEST_CASE("report points carry their rounds, interval and allocated bytes; --compare gives its verdict") {
  const fs::path tmp = scratch_dir() / "report_rounds";
  const Outcome r = run_cli("report --n-min 256 --n-max 512 --threads 1 --methods cnn,full,materialized --rounds 3 "
                            "--max-rounds 3 --round-seconds 0.01 --out " + tmp.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream json_file(tmp / "report.json");
  const auto j = nlohmann::json::parse(json_file);
  REQUIRE(j["points"].size() == 2 * 3);
  for (const auto& p : j["points"]) {
    INFO(p.dump());
    // Three rounds, and a fourth when the third was measured on a busy host.
    const bool measured_again = p["round_contended"][2].get<bool>();
    CHECK(p["rounds"].get<int>() == (measured_again ? 4 : 3));
    CHECK(p["round_medians"].size() == p["rounds"].get<std::size_t>());
    CHECK(p["round_contended"].size() == p["rounds"].get<std::size_t>());
    CHECK(p["runs"].get<int>() >= 3);
    CHECK(p["low_seconds"].get<double>() <= p["seconds"].get<double>());
    CHECK(p["high_seconds"].get<double>() >= p["seconds"].get<double>());
    CHECK(p["min_seconds"].get<double>() <= p["seconds"].get<double>());
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    CHECK(p["allocated_bytes"].get<double>() == -1);  // the sanitizers' allocators are not counted
#else
    // At least q, k, v and out of one head: 4 · n · 64 floats.
    CHECK(p["allocated_bytes"].get<double>() >= 4.0 * 4 * 64 * p["n"].get<double>());
#endif
  }
  CHECK(j["settings"]["rounds"].get<int>() == 3);

  const fs::path cmp = tmp / "cmp";
  const Outcome compared = run_cli("report --compare " + tmp.string() + " " + tmp.string() + " --out " + cmp.string());
  REQUIRE(compared.exit_code == 0);
  std::ifstream summary(cmp / "summary.md");
  std::string title, blank, verdict;
  std::getline(summary, title), std::getline(summary, blank), std::getline(summary, verdict);
  // A report against itself differs nowhere; measured on a busy host it cannot be judged at all.
  CHECK((verdict == "No difference beyond run-to-run noise." || verdict.rfind("Cannot judge: ", 0) == 0));
  std::ifstream compare_json(cmp / "compare.json");
  const auto c = nlohmann::json::parse(compare_json);
  CHECK(c["points"].size() == 2 * 3);
  for (const auto& p : c["points"]) CHECK_FALSE(p["significant"].get<bool>());
  fs::remove_all(tmp.parent_path());
}

TEST_CASE("longattn bench --mode mha reports the time split and memory as JSON") {
  const Outcome r = run_cli("bench --mode mha --n 300 --e 64 --heads 4 --kv-heads 2 --rope half --causal --repeats 1 --json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  CHECK(j["mode"] == "mha");
  CHECK(j["d"] == 16);
  CHECK(j["kv_heads"] == 2);
  CHECK(j["rope"] == "half");
  CHECK(j["qk_precision"] == "inputs");
  CHECK(j["layer"]["seconds"].get<double>() > 0);
  CHECK(j["layer"]["attention_seconds"].get<double>() > 0);
  CHECK(j["alone"]["gemm_seconds"].get<double>() > 0);
  CHECK(j["plain_layer_seconds"].get<double>() > 0);
  // 4 heads · 300 · 301 / 2 causal pairs · 2 · (16 + 16) FLOPs.
  CHECK(j["attention_flops"].get<double>() == doctest::Approx(4.0 * 300 * 301 / 2 * 64));
  CHECK(j["projection_flops"].get<double>() == doctest::Approx(2.0 * 300 * 64 * ((4 + 2 * 2) * 16 + 64)));
  CHECK(j["memory"]["qkv_bytes"].get<double>() == 300.0 * 128 * 4);
}

TEST_CASE("longattn bench --qk-precision int8 says whether the int8 scores ran") {
  const Outcome r = run_cli("bench --n 300 --d 32 --heads 2 --baseline none --repeats 1 --qk-precision int8 --json");
  INFO(r.output);
  if (!longattn::check::int8_scores_available()) {  // the path the command runs, LONGATTN_ISA's if set
    CHECK(r.exit_code != 0);
    CHECK(r.output.find("AVX512-VNNI") != std::string::npos);
    return;
  }
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  CHECK(j["qk_precision"] == "int8");
  CHECK(j["gflops"].get<double>() > 0);
}

TEST_CASE("longattn bench --mode decode times each cache type against dense decoding") {
  const Outcome r = run_cli("bench --mode decode --cache fp32,int8 --page 32 --contexts 100,300 --heads 4 --kv-heads 2 "
                            "--d 16 --batch 2 --repeats 1 --json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  CHECK(j["mode"] == "decode");
  CHECK(j["read_gbps"].get<double>() > 0);
  REQUIRE(j["contexts"].size() == 2);
  const auto& last = j["contexts"][1];
  CHECK(last["context"] == 300);
  CHECK(last["dense_fp32_seconds"].get<double>() > 0);
  REQUIRE(last["caches"].size() == 2);
  CHECK(last["caches"][0]["cache"] == "fp32");
  CHECK(last["caches"][0]["bytes_read"] == 2 * 2 * 300 * 32 * 4);  // sequences · kv heads · tokens · (d + dv) · 4
  CHECK(last["caches"][1]["bytes_per_token"] == 2 * (32 + 8));     // int8 rows and their two scales
  CHECK(last["caches"][1]["tokens_per_second"].get<double>() > 0);
  CHECK(run_cli("bench --mode decode --page 48 --contexts 100 --repeats 1").exit_code != 0);
}

TEST_CASE("longattn run with no queries or no keys: an empty output, or zero rows with lse = -inf") {
  const fs::path tmp = scratch_dir();
  const std::vector<float> ones(2 * 5 * 4, 1.0f);
  npy::save((tmp / "q0.npy").string(), "<f4", {1, 2, 0, 4}, ones.data());
  npy::save((tmp / "k0.npy").string(), "<f4", {1, 2, 0, 4}, ones.data());
  npy::save((tmp / "q3.npy").string(), "<f4", {1, 2, 3, 4}, ones.data());
  npy::save((tmp / "k5.npy").string(), "<f4", {1, 2, 5, 4}, ones.data());
  const std::string dir = tmp.string() + "/";
  for (const char* normalizer : {"softmax", "linear"}) {
    CAPTURE(normalizer);
    const std::string lse = std::string(normalizer) == "softmax" ? " --lse " + dir + "lse.npy" : "";
    const Outcome no_queries = run_cli("run --q " + dir + "q0.npy --k " + dir + "k5.npy --v " + dir + "k5.npy --out " +
                                       dir + "out0.npy --normalizer " + normalizer + lse);
    CHECK_MESSAGE(no_queries.exit_code == 0, no_queries.output);
    CHECK(npy::load((tmp / "out0.npy").string()).shape == std::vector<std::int64_t>{1, 2, 0, 4});
    const Outcome no_keys = run_cli("run --q " + dir + "q3.npy --k " + dir + "k0.npy --v " + dir + "k0.npy --out " +
                                    dir + "out3.npy --normalizer " + normalizer + lse);
    CHECK_MESSAGE(no_keys.exit_code == 0, no_keys.output);
    for (float x : npy::load((tmp / "out3.npy").string()).values<float>()) CHECK(x == 0.0f);
    if (!lse.empty()) {
      for (float x : npy::load((tmp / "lse.npy").string()).values<float>()) CHECK(x == -INFINITY);
    }
  }
  fs::remove_all(tmp);
}

TEST_CASE("longattn selftest: random cases pass, a case reruns by its seed and index, bad lists are errors") {
  const Outcome run = run_cli("selftest --cases 20 --seed 11 --isa scalar --threads 1,2 --max-n 300");
  CAPTURE(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("20 case(s), 0 failed") != std::string::npos);
  CHECK(run.output.find("seed 11") != std::string::npos);
  CHECK(run.output.find("(all)") != std::string::npos);  // the per-feature table

  // The same case drawn again alone: the same description as in a full run's --case line.
  const Outcome one = run_cli("selftest --seed 11 --case 3 --isa scalar --threads 1 --max-n 300");
  CAPTURE(one.output);
  CHECK(one.exit_code == 0);
  CHECK(one.output.find("case 3: ") != std::string::npos);
  CHECK(one.output.find("1 case(s), 0 failed") != std::string::npos);
  const Outcome again = run_cli("selftest --seed 11 --case 3 --isa scalar --threads 1 --max-n 300");
  const auto description = [](const std::string& out) { return out.substr(out.find("case 3: "), out.find('\n', out.find("case 3: ")) - out.find("case 3: ")); };
  CHECK(description(one.output) == description(again.output));

  // Without --seed a seed is drawn and printed.
  const Outcome drawn = run_cli("selftest --cases 2 --isa scalar --threads 1 --max-n 50");
  CHECK(drawn.exit_code == 0);
  CHECK(drawn.output.find("from seed ") != std::string::npos);

  const Outcome bad = run_cli("selftest --cases 1 --isa neon");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("neon") != std::string::npos);
  const Outcome no_threads = run_cli("selftest --cases 1 --threads 0");
  CHECK(no_threads.exit_code == 2);
  CHECK(no_threads.output.find("--threads") != std::string::npos);
}

TEST_CASE("npy::load_rows reads only the named rows of an axis, in the segments' order") {
  const fs::path tmp = scratch_dir();
  std::vector<float> x(2 * 5 * 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const std::string file = (tmp / "x.npy").string();
  npy::save(file, "<f4", {2, 5, 3}, x.data());
  const std::vector<std::array<std::int64_t, 2>> segments{{3, 2}, {0, 1}};
  const npy::Array rows = npy::load_rows(file, 1, segments);
  CHECK(rows.shape == std::vector<std::int64_t>{2, 3, 3});
  const std::vector<float> got = rows.values<float>();
  std::vector<float> expected;
  for (int b = 0; b < 2; ++b)
    for (int i : {3, 4, 0})
      for (int c = 0; c < 3; ++c) expected.push_back(static_cast<float>((b * 5 + i) * 3 + c));
  CHECK(got == expected);
  CHECK(npy::load_header(file).shape == std::vector<std::int64_t>{2, 5, 3});
  const std::vector<std::array<std::int64_t, 2>> outside{{4, 2}};
  CHECK_THROWS_WITH_AS(npy::load_rows(file, 1, outside), doctest::Contains("lie outside"), longattn::Error);
  CHECK_THROWS_WITH_AS(npy::load_rows(file, 3, segments), doctest::Contains("axis"), longattn::Error);
  fs::remove_all(tmp);
}
