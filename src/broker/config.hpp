// Broker knobs, filled by src/config from the TOML file. Defaults equal
// conf/hato.toml.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hato::broker {

struct Config {
    // [limits]
    uint32_t max_connections = 10000;
    uint32_t max_packet_size = 1048576;
    uint16_t max_inflight = 32;            // our outbound window per client (and v5 Receive Maximum we announce)
    uint32_t max_queued_messages = 1000;   // per offline/slow session
    uint64_t max_queued_bytes = 16u << 20; // 0 = no byte limit (conf/hato.toml says why not)
    uint64_t max_output_bytes = 1u << 20;  // per-connection output limit; beyond it QoS 0 is dropped
    uint64_t connect_timeout_ms = 10000;   // a connection must send CONNECT within this time
    uint32_t max_connect_packet_size = 65536;  // largest packet accepted before CONNECT completes
    uint64_t slow_client_timeout_ms = 30000;   // over max_output_bytes this long: disconnected (0 = never)
    // Over max_output_bytes, a receiver stops the broker's intake (back-pressure)
    // this long at most; after it, QoS 0 to it alone is dropped (0 = at once).
    uint64_t slow_consumer_ms = 500;
    // Subscriptions one session may hold; a SUBSCRIBE past it is refused
    // filter by filter (0x97 / 0x80). 0 = no limit.
    uint32_t max_subscriptions_per_client = 10000;
    // Levels of a topic name or filter (a/b/c: 3). Each level is a node of
    // the topic tree and a probe of every match that reaches it, so depth is
    // memory and loop time a client would otherwise choose. Deeper PUBLISH
    // topics are refused (0x90), deeper filters too (0x8F / 0x80).
    uint32_t max_topic_levels = 64;
    // Bytes of a topic name or filter, refused the same way past it. A
    // subscription keeps its filter about three times (its session, the
    // tree, the store), a retained topic and the route cache theirs: 64 KiB
    // names made one client's 10 000 subscriptions 1.8 GiB.
    uint32_t max_topic_length = 4096;
    // Client ids longer than this are refused (0x85 / return code 2): the
    // id is kept several times per session (index, store, log lines).
    uint32_t max_client_id_length = 256;
    // Sessions held, connected or not. A CONNECT that would add one that
    // outlives its connection is refused past it (0x97 / return code 3):
    // nothing else bounds sessions nobody ends. Clean sessions are bounded
    // by max_connections; configured bridges' sessions are exempt. 0 = none.
    uint32_t max_sessions = 10000;
    // Retained topics held. A retained message to a new topic past it is
    // not retained: refused (0x97) to a v5 QoS 1/2 publisher, delivered
    // without being retained otherwise. Replacing or clearing one is always
    // allowed. A device that puts a counter or a time stamp in its retained
    // topic would otherwise fill memory and the store. 0 = none.
    uint32_t max_retained_messages = 100000;
    // Topic tree nodes one connection's input may step through per loop
    // pass (match_budget.hpp): about 2 ms of matching on a gateway's core.
    // Past it the rest of its input waits for the next pass. Not in the
    // TOML file; tests set it low. 0 = no budget.
    uint32_t match_work_per_pass = 65536;

    // [mqtt]
    uint16_t server_keep_alive = 0;        // imposed on v5 clients; 0 = accept the client's
    uint16_t max_keep_alive = 0;           // upper bound on any client's keep alive; 0 = none
    uint16_t receive_maximum = 32;         // announced in CONNACK (inbound QoS 1/2 window)
    uint16_t topic_alias_maximum = 16;     // inbound aliases we accept (0 = none)
    uint16_t max_outbound_topic_aliases = 16;  // aliases we assign per client (capped by client's max)
    uint8_t maximum_qos = 2;
    bool retain_available = true;
    bool wildcard_subscriptions = true;
    bool shared_subscriptions = true;
    bool subscription_identifiers = true;
    uint32_t max_message_expiry = 0;       // cap on message expiry interval, 0 = none
    uint32_t max_session_expiry = 0;       // cap on session expiry interval, 0 = none
    std::string response_information;      // answered to Request Response Information, empty = none

    // The client ids of hato's own bridges' local sessions begin with this;
    // the broker keeps it and "$bridge/..." topics to them.
    static constexpr std::string_view kBridgeClientIdPrefix = "$bridge/";

    // Queue budgets replacing max_queued_messages / max_queued_bytes for the
    // sessions they name (the bridges' "$bridge/<name>" sessions): no count
    // limit, `max_bytes` (0 = none), and which end gives way when it is hit.
    struct SessionBudget {
        std::string client_id;
        uint64_t max_bytes = 0;
        bool drop_oldest = true;
        // QoS 0 messages for this session are queued (durably) as QoS 1,
        // so a bridge carries them across an outage too.
        bool queue_qos0 = false;
    };
    std::vector<SessionBudget> session_budgets;

    // [auth]
    // A CONNECT by another user for a persistent session's client id: false
    // refuses it (Not authorized); true discards the old session and starts
    // a new one for the new user (its queue is never handed over).
    bool allow_session_takeover_by_other_user = false;

    // [sparkplug]
    // Sparkplug Aware: each NBIRTH/DBIRTH is also kept retained on
    // $sparkplug/certificates/<its topic> (see broker/sparkplug.hpp).
    bool sparkplug_aware = false;
};

}  // namespace hato::broker
