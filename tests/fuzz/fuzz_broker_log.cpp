// libFuzzer target: the broker script (broker_script.hpp) over the real
// append log, with crash restarts that tear or corrupt the log's tail
// (log_env.hpp). Same corpus as fuzz_broker.
#include "broker_script.hpp"
#include "log_env.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    hato::fuzz::LogEnv env;
    hato::fuzz::run_broker_script({data, size}, env);
    return 0;
}
