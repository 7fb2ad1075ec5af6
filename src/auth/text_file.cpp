#include "auth/text_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hato::auth {

bool read_text_file(const std::string& path, std::string& out, std::vector<std::string>& errors) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        errors.push_back(path + ": cannot open: " + std::strerror(errno));
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

}  // namespace hato::auth
