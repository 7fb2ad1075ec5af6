#include "broker/message.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace hato::broker {

namespace {
// Small messages (most sensor traffic) come from a free list of blocks of
// one size rather than from malloc: a QoS 0 message lives for part of one
// loop pass, and at millions a second the malloc/free pair was ~6% of the
// broker's time. Per thread, so no locking; trivially destructible, so no
// guard on each access. Off under AddressSanitizer, which must see every
// block freed.
constexpr size_t kPooledBlockBytes = 256;
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kPooledBlocks = 0;
#else
constexpr size_t kPooledBlocks = 1024;   // 256 KiB kept at most
#endif
struct BlockPool {
    void* blocks[kPooledBlocks == 0 ? 1 : kPooledBlocks];
    size_t count;
};
thread_local BlockPool block_pool{};

void* take_block(size_t bytes) {
    if (bytes > kPooledBlockBytes || kPooledBlocks == 0) return ::operator new(bytes);
    if (block_pool.count > 0) return block_pool.blocks[--block_pool.count];
    return ::operator new(kPooledBlockBytes);
}

void give_block(void* block, size_t bytes) {
    if (bytes <= kPooledBlockBytes && block_pool.count < kPooledBlocks) {
        block_pool.blocks[block_pool.count++] = block;
        return;
    }
    ::operator delete(block);
}
uint8_t* place(uint8_t* at, const void* src, size_t n) {
    if (n) std::memcpy(at, src, n);
    return at + n;
}

// Behind the topic and properties of a message that shares its payload:
// where the payload is, and the packet that holds it.
constexpr size_t kSharedTail = 2 * sizeof(void*);
}  // namespace

MsgPtr Message::make(const Init& in) {
    // [Message][topic][payload][forwarded]: the bytes need no alignment.
    const size_t extra = in.topic.size() + in.payload.size() + in.forwarded.size();
    Message* m = new (take_block(sizeof(Message) + extra)) Message();
    uint8_t* at = place(reinterpret_cast<uint8_t*>(m + 1), in.topic.data(), in.topic.size());
    at = place(at, in.payload.data(), in.payload.size());
    place(at, in.forwarded.data(), in.forwarded.size());
    m->set_fields(in);
    return MsgPtr(m);
}

MsgPtr Message::make_sharing(const Init& in, ReceivedPacket* packet) {
    const size_t extra = in.topic.size() + in.forwarded.size() + kSharedTail;
    Message* m = new (take_block(sizeof(Message) + extra)) Message();
    uint8_t* at = place(reinterpret_cast<uint8_t*>(m + 1), in.topic.data(), in.topic.size());
    at = place(at, in.forwarded.data(), in.forwarded.size());
    const uint8_t* payload = in.payload.data();
    at = place(at, &payload, sizeof payload);
    place(at, &packet, sizeof packet);
    ++packet->refs;
    m->set_fields(in);
    m->forwarded_len_ |= kSharedPayload;
    return MsgPtr(m);
}

void Message::set_fields(const Init& in) {
    topic_len_ = static_cast<uint16_t>(in.topic.size());
    payload_len_ = static_cast<uint32_t>(in.payload.size());
    forwarded_len_ = static_cast<uint32_t>(in.forwarded.size());
    qos = in.qos;
    retain = in.retain;
    expiry_ms = in.expiry_ms;
    expiry_wall_ms = in.expiry_wall_ms;
}

size_t Message::block_bytes() const {
    return sizeof(Message) + topic_len_ + forwarded_len() + (shared() ? kSharedTail : payload_len_);
}

void Message::destroy(const Message* m) {
    const size_t bytes = m->block_bytes();
    if (m->shared()) load_pointer<ReceivedPacket>(m->shared_ptrs() + sizeof(void*))->release();
    m->~Message();
    give_block(const_cast<Message*>(m), bytes);
}

namespace {
// Multiply-xor over 8-byte words (little-endian, as every target is), with
// each field's length mixed in so that moving bytes between topic and
// payload changes the result.
uint64_t mix_words(uint64_t h, const uint8_t* p, size_t n) {
    constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
    h = (h ^ n) * kMul;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * kMul;
        h ^= h >> 32;
    }
    uint64_t tail = 0;
    if (n) std::memcpy(&tail, p, n);
    h = (h ^ tail) * kMul;
    return h ^ (h >> 29);
}
}  // namespace

uint64_t message_digest(std::string_view topic, std::span<const uint8_t> payload, bool retain) {
    uint64_t h = mix_words(retain ? 0x52 : 0x51, reinterpret_cast<const uint8_t*>(topic.data()), topic.size());
    h = mix_words(h, payload.data(), payload.size());
    // splitmix64's finalizer: every input bit reaches every output bit.
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    return h ? h : 1;
}

MsgPtr from_stored(const StoredMessageView& s, uint64_t now_ms, uint64_t wall_now_ms, bool keep_expired) {
    Message::Init in;
    in.topic = s.topic;
    in.payload = s.payload;
    in.forwarded = s.forwarded_props;
    in.qos = s.qos;
    in.retain = s.retain;
    in.expiry_wall_ms = s.expiry_wall_ms;
    if (s.expiry_wall_ms != 0) {
        if (s.expiry_wall_ms > wall_now_ms) in.expiry_ms = now_ms + (s.expiry_wall_ms - wall_now_ms);
        // Expired, but a delivery already under way completes: it goes out
        // with 1 s left, as it would have without the restart.
        else if (keep_expired) in.expiry_ms = std::max<uint64_t>(now_ms, 1);
        else return nullptr;
    }
    return Message::make(in);
}

}  // namespace hato::broker
