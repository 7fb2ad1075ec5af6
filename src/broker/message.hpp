// One published message, immutable once built and shared (reference counted)
// by every session queue, in-flight slot and the retained table: routing to N
// subscribers costs N pointer copies, never N payload copies.
//
// Topic, payload and forwarded properties live in the same heap block as the
// message itself: one allocation per message (a million retained messages
// after a restart are a million blocks, not four million). The count is a
// plain integer: the broker runs on one thread and messages never leave it.
// A large payload is the exception: it stays in the buffer its PUBLISH was
// reassembled in (ReceivedPacket), which the message then shares, so the
// broker copies its bytes once (into each receiver's output), not twice.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/persistence.hpp"

namespace hato::broker {

class MsgPtr;

// An allocator whose resize() leaves new bytes as they are: a large packet
// received in place (Broker::receive_target) is written by the kernel right
// after, and zeroing it first would cost as much again as a copy.
template <class T>
struct UninitAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = UninitAllocator<U>;
    };
    UninitAllocator() = default;
    template <class U>
    UninitAllocator(const UninitAllocator<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};
// A packet being reassembled from the input stream.
using InputBytes = std::vector<uint8_t, UninitAllocator<uint8_t>>;

// A reassembled packet's bytes, shared by the code handling the packet and
// the message that keeps its payload. Counted like messages (one thread).
struct ReceivedPacket {
    uint32_t refs = 1;
    InputBytes bytes;
    static ReceivedPacket* hold(InputBytes&& bytes) { return new ReceivedPacket{1, std::move(bytes)}; }
    void release() {
        if (--refs == 0) delete this;
    }
    bool holds(std::span<const uint8_t> span) const {
        return !span.empty() && span.data() >= bytes.data() && span.data() + span.size() <= bytes.data() + bytes.size();
    }
};

class Message {
public:
    // What a message is built from; the bytes are copied into the message.
    struct Init {
        std::string_view topic;
        std::span<const uint8_t> payload;
        std::span<const uint8_t> forwarded;   // mqtt::encode_forwarded_properties output
        uint8_t qos = 0;
        bool retain = false;
        uint64_t expiry_ms = 0;               // monotonic deadline, 0 = never
        uint64_t expiry_wall_ms = 0;          // the same deadline on the wall clock
    };
    static MsgPtr make(const Init& init);
    // The same, keeping the payload where `packet` holds it (packet->holds(init.payload)).
    static MsgPtr make_sharing(const Init& init, ReceivedPacket* packet);

    // Views of the bytes stored right behind this header: [topic][payload]
    // [forwarded], or [topic][forwarded][payload pointer][packet pointer].
    std::string_view topic() const { return {reinterpret_cast<const char*>(this + 1), topic_len_}; }
    std::span<const uint8_t> payload() const {
        if (shared()) return {load_pointer<const uint8_t>(shared_ptrs()), payload_len_};
        return {bytes() + topic_len_, payload_len_};
    }
    std::span<const uint8_t> forwarded() const {
        return {bytes() + topic_len_ + (shared() ? 0 : payload_len_), forwarded_len()};
    }

    uint64_t expiry_ms = 0;           // monotonic deadline, 0 = never
    uint64_t expiry_wall_ms = 0;      // the same deadline on the wall clock (for persistence)

private:
    // Lengths instead of views: with them the header is 32 bytes (a million
    // retained messages are a lot of headers). Topics are < 64 KiB by the
    // protocol; payloads and properties < 256 MiB. Declared here, between
    // the public fields, so that nothing is padded.
    mutable uint32_t refs_ = 0;
    uint32_t payload_len_ = 0;
    uint32_t forwarded_len_ = 0;
    uint16_t topic_len_ = 0;

public:
    uint8_t qos = 0;                  // as published
    bool retain = false;              // as published

    bool expired(uint64_t now_ms) const { return expiry_ms != 0 && now_ms >= expiry_ms; }
    // Remaining expiry interval in whole seconds, rounded up (forwarded to receivers).
    uint32_t remaining_s(uint64_t now_ms) const {
        if (expiry_ms == 0 || now_ms >= expiry_ms) return 0;
        return static_cast<uint32_t>((expiry_ms - now_ms + 999) / 1000);
    }
    size_t byte_size() const { return size_t(topic_len_) + payload_len_ + forwarded_len(); }

    // One more reference, held as a plain pointer by code that must not know
    // the type (Transport::send_kept); let_go(that pointer) drops it.
    static void* keep(const Message& m) {
        ++m.refs_;
        return const_cast<Message*>(&m);
    }
    static void let_go(void* m) {
        const Message* msg = static_cast<const Message*>(m);
        if (--msg->refs_ == 0) destroy(msg);
    }

private:
    friend class MsgPtr;
    Message() = default;
    static void destroy(const Message* m);
    void set_fields(const Init& in);
    const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(this + 1); }
    // Properties are < 256 MiB: the top bit of their length says the payload is shared.
    static constexpr uint32_t kSharedPayload = 1u << 31;
    bool shared() const { return (forwarded_len_ & kSharedPayload) != 0; }
    uint32_t forwarded_len() const { return forwarded_len_ & ~kSharedPayload; }
    const uint8_t* shared_ptrs() const { return bytes() + topic_len_ + forwarded_len(); }
    size_t block_bytes() const;
    template <class T>
    static T* load_pointer(const uint8_t* at) {
        T* p;
        std::memcpy(&p, at, sizeof p);   // unaligned behind the topic
        return p;
    }
};
static_assert(sizeof(Message) == 32, "Message header grew: see the comment on its lengths");

// Shared, counted reference to an immutable Message (like shared_ptr<const
// Message>, without the atomic count and the separate control block).
class MsgPtr {
public:
    MsgPtr() = default;
    MsgPtr(std::nullptr_t) {}
    MsgPtr(const MsgPtr& o) : p_(o.p_) { if (p_) ++p_->refs_; }
    MsgPtr(MsgPtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    MsgPtr& operator=(const MsgPtr& o) {
        MsgPtr copy(o);
        std::swap(p_, copy.p_);
        return *this;
    }
    MsgPtr& operator=(MsgPtr&& o) noexcept {
        MsgPtr old(std::move(*this));
        p_ = std::exchange(o.p_, nullptr);
        return *this;
    }
    ~MsgPtr() { if (p_ && --p_->refs_ == 0) Message::destroy(p_); }

    void reset() { MsgPtr old(std::move(*this)); }
    const Message* get() const { return p_; }
    const Message& operator*() const { return *p_; }
    const Message* operator->() const { return p_; }
    explicit operator bool() const { return p_ != nullptr; }
    friend bool operator==(const MsgPtr& a, const MsgPtr& b) { return a.p_ == b.p_; }

private:
    friend class Message;
    explicit MsgPtr(const Message* p) : p_(p) { ++p_->refs_; }
    const Message* p_ = nullptr;
};

// Views of a message for persistence; `qos`/`retain` are the values this copy carries.
inline StoredMessageView to_stored(const Message& m, uint8_t qos, bool retain) {
    StoredMessageView s;
    s.topic = m.topic();
    s.payload = m.payload();
    s.forwarded_props = m.forwarded();
    s.qos = qos;
    s.retain = retain;
    s.expiry_wall_ms = m.expiry_wall_ms;
    return s;
}

// A 64-bit fingerprint of what a QoS 2 PUBLISH carries, kept with its
// inbound packet id: a PUBLISH under an id still open is a retransmission
// only if it carries the same. Never 0 (0 means "unknown"). Stored in the
// log, so the function must never change.
uint64_t message_digest(std::string_view topic, std::span<const uint8_t> payload, bool retain);

// Rebuilds a message from storage; the monotonic deadline is derived from
// the wall-clock one. Returns nullptr if it already expired, unless
// `keep_expired` (a delivery already under way must still complete).
MsgPtr from_stored(const StoredMessageView& s, uint64_t now_ms, uint64_t wall_now_ms, bool keep_expired = false);

}  // namespace hato::broker
