#include "broker/message.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace hato::broker {

MsgPtr Message::make(const Init& in) {
    // [Message][topic][payload][forwarded]: the bytes need no alignment.
    const size_t extra = in.topic.size() + in.payload.size() + in.forwarded.size();
    void* block = ::operator new(sizeof(Message) + extra);
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
    m->~Message();
    ::operator delete(const_cast<Message*>(m));
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
