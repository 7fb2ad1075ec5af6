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
}  // namespace

MsgPtr Message::make(const Init& in) {
    // [Message][topic][payload][forwarded]: the bytes need no alignment.
    const size_t extra = in.topic.size() + in.payload.size() + in.forwarded.size();
    void* block = take_block(sizeof(Message) + extra);
    Message* m = new (block) Message();
    uint8_t* bytes = reinterpret_cast<uint8_t*>(m + 1);
    auto place = [&bytes](const void* src, size_t n) {
        if (n) std::memcpy(bytes, src, n);
        bytes += n;
    };
    place(in.topic.data(), in.topic.size());
    place(in.payload.data(), in.payload.size());
    place(in.forwarded.data(), in.forwarded.size());
    m->topic_len_ = static_cast<uint16_t>(in.topic.size());
    m->payload_len_ = static_cast<uint32_t>(in.payload.size());
    m->forwarded_len_ = static_cast<uint32_t>(in.forwarded.size());
    m->qos = in.qos;
    m->retain = in.retain;
    m->expiry_ms = in.expiry_ms;
    m->expiry_wall_ms = in.expiry_wall_ms;
    return MsgPtr(m);
}

void Message::destroy(const Message* m) {
    const size_t bytes = sizeof(Message) + m->topic_len_ + m->payload_len_ + m->forwarded_len_;
    m->~Message();
    give_block(const_cast<Message*>(m), bytes);
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
