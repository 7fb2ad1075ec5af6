// The broker's retained messages: which message each topic holds, found by
// topic or by a subscription's filter. A message is held either as a copy
// of the broker's own (MsgPtr), or, when the Persistence can serve its
// stored record from memory (the log's mapping), as a reference to that
// record, decoded into a Message only when it is delivered. A million
// retained messages recovered from the log then cost the index alone, not a
// million heap copies of bytes the mapping already holds; messages set
// later are held the same way once their record is written, so memory
// stays flat however many there are.
//
// A reference stays valid as long as the record it names is the topic's
// live retained_set: the store compacts a live record by copying it, and
// then reports the copy (Persistence::on_retained_moved -> moved()).
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "broker/message.hpp"
#include "broker/persistence.hpp"
#include "broker/retained_index.hpp"

namespace hato::broker {

class RetainedStore {
public:
    // Decodes references through `persist` and follows its moves; `persist`
    // must outlive this store.
    explicit RetainedStore(Persistence& persist);
    ~RetainedStore();
    RetainedStore(const RetainedStore&) = delete;
    RetainedStore& operator=(const RetainedStore&) = delete;

    // Holds `msg` itself for its topic, replacing what the topic held.
    void put(MsgPtr msg);
    // Holds the stored record `ref` (Persistence::retained_at) for m.topic,
    // m being what it decodes to.
    void put_stored(const StoredMessageView& m, const void* ref);
    // After persist.retained_set(m) succeeded: holds its record if the
    // persistence serves it from memory, else `msg` itself.
    void put_written(const MsgPtr& msg);
    // Forgets `topic`; false if it held nothing.
    bool clear(std::string_view topic);
    bool contains(std::string_view topic) const;

    // Every unexpired message `filter` matches, appended to `out` (stored
    // ones decoded into Messages, with expiry derived from the wall clock).
    void match(std::string_view filter, uint64_t now_ms, uint64_t wall_now_ms,
               std::vector<MsgPtr>& out) const;
    // The same, one at a time, until fn returns false: a stored message is
    // decoded (its payload copied) only when its turn comes, so what is
    // held at once is what fn keeps.
    void visit(std::string_view filter, uint64_t now_ms, uint64_t wall_now_ms,
               const std::function<bool(const MsgPtr&)>& fn) const;

    // The topics whose message expired (nothing else removes them while the
    // broker runs: they are only skipped when matched).
    std::vector<std::string> expired_topics(uint64_t now_ms, uint64_t wall_now_ms) const;

    // The persistence copied a stored record; `ref` names the copy.
    void moved(const void* ref);

    // Room for `topics` more (recovery); a hint that put*(topic) follows soon.
    void reserve(size_t topics);
    void prefetch(std::string_view topic) const { index_.prefetch(topic); }

    size_t size() const { return index_.size(); }
    // Topics only the broker and its bridges write: $SYS (but a client's
    // connection state, which any client may write for its own id) and the
    // bridges' $bridge records. max_retained_messages does not count them;
    // any other '$' root ($aws, $sparkplug, ...) is a topic like any other.
    static bool uncounted(std::string_view topic) {
        return (topic.starts_with("$SYS/") && !topic.starts_with("$SYS/broker/connection/")) ||
               topic.starts_with("$bridge/");
    }
    size_t uncounted_count() const { return uncounted_; }
    uint64_t nodes_visited() const { return index_.nodes_visited(); }   // the work of match()
    size_t stored_count() const { return stored_; }   // held as references
    uint64_t bytes() const { return bytes_; }          // topics, payloads, properties
    const RetainedIndex& index() const { return index_; }

private:
    using Handle = RetainedIndex::Handle;
    // A handle is either a reference with the low bit set (records are
    // 8-byte aligned), or an index into heap_ shifted left by one.
    static bool is_ref(Handle h) { return (h & 1) != 0; }
    static const void* ref_of(Handle h) { return reinterpret_cast<const void*>(h & ~Handle(1)); }
    void set(std::string_view topic, Handle h);
    void drop(Handle h);   // releases what `h` holds

    Persistence& persist_;
    RetainedIndex index_;
    std::vector<MsgPtr> heap_;
    std::vector<uint64_t> free_;   // free heap_ slots
    size_t stored_ = 0;
    size_t uncounted_ = 0;   // topics uncounted() holds
    uint64_t bytes_ = 0;
};

}  // namespace hato::broker
