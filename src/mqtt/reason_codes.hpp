// Private to the codec: which v5 reason codes each packet may carry (2.4 and
// the per-packet tables in chapter 3). A code outside its packet's list is Malformed.
#pragma once

#include <cstdint>

namespace hato::mqtt::reasons {

inline bool connack(uint8_t c) {
    switch (c) {
    case 0x00: case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85:
    case 0x86: case 0x87: case 0x88: case 0x89: case 0x8A: case 0x8C: case 0x90:
    case 0x95: case 0x97: case 0x99: case 0x9A: case 0x9B: case 0x9C: case 0x9D:
    case 0x9F: return true;
    default: return false;
    }
}

// PUBACK and PUBREC.
inline bool puback(uint8_t c) {
    switch (c) {
    case 0x00: case 0x10: case 0x80: case 0x83: case 0x87: case 0x90: case 0x91:
    case 0x97: case 0x99: return true;
    default: return false;
    }
}

// PUBREL and PUBCOMP.
inline bool pubrel(uint8_t c) { return c == 0x00 || c == 0x92; }

inline bool suback(uint8_t c) {
    switch (c) {
    case 0x00: case 0x01: case 0x02: case 0x80: case 0x83: case 0x87: case 0x8F:
    case 0x91: case 0x97: case 0x9E: case 0xA1: case 0xA2: return true;
    default: return false;
    }
}

inline bool unsuback(uint8_t c) {
    switch (c) {
    case 0x00: case 0x11: case 0x80: case 0x83: case 0x87: case 0x8F: case 0x91: return true;
    default: return false;
    }
}

inline bool disconnect(uint8_t c) {
    switch (c) {
    case 0x00: case 0x04: case 0x80: case 0x81: case 0x82: case 0x83: case 0x87:
    case 0x89: case 0x8B: case 0x8D: case 0x8E: case 0x8F: case 0x90: case 0x93:
    case 0x94: case 0x95: case 0x96: case 0x97: case 0x98: case 0x99: case 0x9A:
    case 0x9B: case 0x9C: case 0x9D: case 0x9E: case 0x9F: case 0xA0: case 0xA1:
    case 0xA2: return true;
    default: return false;
    }
}

inline bool auth(uint8_t c) { return c == 0x00 || c == 0x18 || c == 0x19; }

}  // namespace hato::mqtt::reasons
