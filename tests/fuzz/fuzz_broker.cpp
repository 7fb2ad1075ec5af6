// libFuzzer target: the broker driven by a script (broker_script.hpp).
// Built by `meson setup build-fuzz -Dfuzz=true` with clang (CXX=clang++);
// run with tests/fuzz/run.sh. Inputs it finds go into corpus/broker, where
// the unit tests replay them.
#include "broker_script.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    hato::fuzz::run_broker_script({data, size});
    return 0;
}
