// Replays every input in tests/fuzz/corpus/broker through the fuzz script,
// in memory and over the real append log,
// (seeds and whatever the fuzzer kept, crashes it found included), so they
// keep running under CI's sanitizer build without clang or libFuzzer.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "../../fuzz/broker_script.hpp"
#include "../../fuzz/log_env.hpp"

TEST_CASE("fuzz corpus replays cleanly") {
    namespace fs = std::filesystem;
    const fs::path dir = HATO_FUZZ_CORPUS;
    REQUIRE(fs::is_directory(dir));
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        CAPTURE(e.path().filename().string());
        hato::fuzz::run_broker_script(bytes);
        hato::fuzz::LogEnv env;   // the same script over the real log, with crash restarts
        hato::fuzz::run_broker_script(bytes, env);
        ++files;
    }
    CHECK(files >= 10);   // the seeds at least
}
