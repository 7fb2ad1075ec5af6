#include "broker/retained_store.hpp"

namespace hato::broker {

namespace {

size_t bytes_of(const StoredMessageView& m) {
    return m.topic.size() + m.payload.size() + m.forwarded_props.size();
}

}  // namespace

RetainedStore::RetainedStore(Persistence& persist) : persist_(persist) {
    persist_.on_retained_moved([this](const void* ref) { moved(ref); });
}

RetainedStore::~RetainedStore() { persist_.on_retained_moved({}); }

void RetainedStore::set(std::string_view topic, Handle h) {
    Handle old = 0;
    if (index_.set(topic, h, old)) drop(old);
    else if (uncounted(topic)) ++uncounted_;
}

void RetainedStore::drop(Handle h) {
    if (is_ref(h)) {
        --stored_;
        bytes_ -= bytes_of(persist_.retained_at(ref_of(h)));
        return;
    }
    const uint64_t slot = h >> 1;
    bytes_ -= heap_[slot]->byte_size();
    heap_[slot].reset();
    free_.push_back(slot);
}

void RetainedStore::put(MsgPtr msg) {
    uint64_t slot;
    if (free_.empty()) {
        slot = heap_.size();
        heap_.emplace_back();
    } else {
        slot = free_.back();
        free_.pop_back();
    }
    bytes_ += msg->byte_size();
    const std::string_view topic = msg->topic();   // stays valid: heap_ holds msg
    heap_[slot] = std::move(msg);
    set(topic, Handle(slot) << 1);
}

void RetainedStore::put_stored(const StoredMessageView& m, const void* ref) {
    ++stored_;
    bytes_ += bytes_of(m);
    set(m.topic, reinterpret_cast<Handle>(ref) | 1);
}

void RetainedStore::put_written(const MsgPtr& msg) {
    const void* ref = persist_.last_retained_ref();
    // A reference must leave the low bit free (the log's records are 8-byte aligned).
    if (ref && (reinterpret_cast<Handle>(ref) & 1) == 0) return put_stored(to_stored(*msg, msg->qos, true), ref);
    put(msg);
}

bool RetainedStore::clear(std::string_view topic) {
    Handle old = 0;
    if (!index_.clear(topic, old)) return false;
    if (uncounted(topic)) --uncounted_;
    drop(old);
    return true;
}

bool RetainedStore::contains(std::string_view topic) const {
    Handle h = 0;
    return index_.find(topic, h);
}

void RetainedStore::match(std::string_view filter, uint64_t now_ms, uint64_t wall_now_ms,
                          std::vector<MsgPtr>& out) const {
    visit(filter, now_ms, wall_now_ms, [&](const MsgPtr& m) {
        out.push_back(m);
        return true;
    });
}

void RetainedStore::visit(std::string_view filter, uint64_t now_ms, uint64_t wall_now_ms,
                          const std::function<bool(const MsgPtr&)>& fn) const {
    index_.match(filter, [&](std::string_view, Handle h) {
        if (is_ref(h)) {
            const MsgPtr m = from_stored(persist_.retained_at(ref_of(h)), now_ms, wall_now_ms);
            return !m || fn(m);
        }
        const MsgPtr& m = heap_[h >> 1];
        return !m || m->expired(now_ms) || fn(m);
    });
}

std::vector<std::string> RetainedStore::expired_topics(uint64_t now_ms, uint64_t wall_now_ms) const {
    std::vector<std::string> out;
    auto note = [&](std::string_view topic, Handle h) {
        if (is_ref(h)) {
            const uint64_t at = persist_.retained_at(ref_of(h)).expiry_wall_ms;
            if (at != 0 && at <= wall_now_ms) out.emplace_back(topic);
        } else if (const MsgPtr& m = heap_[h >> 1]; m && m->expired(now_ms)) {
            out.emplace_back(topic);
        }
        return true;
    };
    index_.match("#", note);
    return out;
}

void RetainedStore::moved(const void* ref) {
    const StoredMessageView m = persist_.retained_at(ref);
    Handle* h = index_.handle(m.topic);
    // A topic held as a copy of the broker's own (set while the store
    // refused, or by the broker itself) has nothing stored to follow.
    if (h && is_ref(*h)) *h = reinterpret_cast<Handle>(ref) | 1;
}

void RetainedStore::reserve(size_t topics) { index_.reserve(topics); }

}  // namespace hato::broker
