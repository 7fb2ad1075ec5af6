// CRC32C (Castagnoli), the checksum of every log record. Software
// slicing-by-8, or the SSE4.2 crc32 instruction when the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hato::store {

// Extends `crc` (0 for a fresh checksum) over `len` bytes.
uint32_t crc32c(uint32_t crc, const void* data, size_t len);

// The portable path alone, so tests can compare it with the hardware one.
uint32_t crc32c_software(uint32_t crc, const void* data, size_t len);

}  // namespace hato::store
