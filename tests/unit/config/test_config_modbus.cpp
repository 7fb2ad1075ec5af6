// [[modbus]] devices and [[modbus.point]]s: defaults, and every refusal
// with its line:column and key.
#include <doctest/doctest.h>

#include <string>
#include <tuple>
#include <vector>

#include "config/config.hpp"
#include "config_test_util.hpp"

using namespace hato;
using namespace hato::config_test;

TEST_CASE("a device with defaults") {
    config::AppConfig c;
    auto errors = load(R"([[modbus]]
name = "m"
host = "10.0.0.2"
[[modbus.point]]
name = "a"
kind = "coil"
address = 7
[[modbus.point]]
name = "b"
kind = "holding"
address = 1
type = "f32"
word_order = "little"
scale = 2
)",
                       c);
    REQUIRE(errors.empty());
    REQUIRE(c.modbus.size() == 1);
    const config::ModbusDevice& d = c.modbus[0];
    CHECK(d.transport == "tcp");
    CHECK(d.port == 502);
    CHECK(d.unit_id == 1);
    CHECK(d.poll_interval_ms == 1000);
    CHECK(d.topic_prefix == "modbus/m");
    CHECK(d.status_topic == "modbus/m/$status");
    REQUIRE(d.points.size() == 2);
    CHECK(d.points[0].format.type == modbus::Type::Bool);
    CHECK(d.points[0].qos == 1);
    CHECK(d.points[0].retain);
    CHECK_FALSE(d.points[0].every_poll);
    CHECK(d.points[1].format.type == modbus::Type::F32);
    CHECK_FALSE(d.points[1].format.word_big);
    CHECK(d.points[1].format.scale == 2.0);
}

TEST_CASE("rtu settings") {
    config::AppConfig c;
    auto errors = load(R"([[modbus]]
name = "r"
transport = "rtu"
serial = "/dev/ttyUSB0"
baud = 9600
parity = "N"
stop_bits = 2
[[modbus.point]]
name = "a"
kind = "input"
address = 0
)",
                       c);
    REQUIRE(errors.empty());
    CHECK(c.modbus[0].baud == 9600);
    CHECK(c.modbus[0].parity == 'N');
    CHECK(c.modbus[0].stop_bits == 2);
}

TEST_CASE("impossible configurations are refused with line:column and key") {
    config::AppConfig c;
    auto errors = load(R"([[modbus]]
name = "x"
transport = "tcp"
host = "h"
baud = 9600
[[modbus.point]]
name = "a"
kind = "input"
address = 65535
type = "u32"
writable = true
[[modbus.point]]
name = "s"
kind = "holding"
address = 10
type = "string"
[[modbus.point]]
name = "o1"
kind = "holding"
address = 20
type = "u64"
[[modbus.point]]
name = "o2"
kind = "holding"
address = 23
[[modbus.point]]
name = "d"
kind = "discrete"
address = 1
writable = true
[[modbus.point]]
name = "c"
kind = "coil"
address = 2
type = "u16"
[[modbus.point]]
name = "o1"
kind = "coil"
address = 3
count = 2
[[modbus]]
name = "y"
transport = "serial"
[[modbus]]
name = "z"
transport = "rtu"
[[modbus.point]]
name = "a"
kind = "register"
address = 0
)",
                       c);
    CHECK(has(errors, "t.toml:5:8: modbus[0].baud: only for transport = \"rtu\""));
    CHECK(has(errors, "t.toml:9:11: modbus[0].point[0].address: 65535 + 2 registers ends past 65535"));
    CHECK(has(errors, "t.toml:11:12: modbus[0].point[0].writable: an input register is read-only"));
    CHECK(has(errors, "modbus[0].point[1].count: a \"string\" needs count"));
    CHECK(has(errors, "t.toml:25:11: modbus[0].point[3].address: overlaps point \"o1\" (address 20, 4 register(s))"));
    CHECK(has(errors, "modbus[0].point[4].writable: a discrete input is read-only"));
    CHECK(has(errors, "modbus[0].point[5].type: coil and discrete points are \"bool\""));
    CHECK(has(errors, "modbus[0].point[6].name: \"o1\" is already used in this device"));
    CHECK(has(errors, "modbus[0].point[6].count: only for type = \"string\""));
    CHECK(has(errors, "modbus[1].transport: \"serial\" is not one of tcp | rtu"));
    CHECK(has(errors, "modbus[1].point: at least one [[modbus.point]] is required"));
    CHECK(has(errors, "modbus[2].serial: required for transport = \"rtu\""));
    CHECK(has(errors, "modbus[2].point[0].kind: \"register\" is not one of holding | input | coil | discrete"));
}

TEST_CASE("numbers a point cannot use, and a string too long to write at once") {
    config::AppConfig c;
    auto errors = load(R"([[modbus]]
name = "x"
transport = "tcp"
host = "h"
[[modbus.point]]
name = "a"
kind = "holding"
address = 0
scale = inf
offset = nan
deadband = nan
[[modbus.point]]
name = "s"
kind = "holding"
address = 10
type = "string"
count = 124
writable = true
[[modbus.point]]
name = "r"
kind = "holding"
address = 200
type = "string"
count = 125
)",
                       c);
    CHECK(has(errors, "modbus[0].point[0].scale: must be a finite number"));
    CHECK(has(errors, "modbus[0].point[0].offset: must be a finite number"));
    CHECK(has(errors, "modbus[0].point[0].deadband: must not be negative"));
    CHECK(has(errors, "t.toml:17:9: modbus[0].point[1].count: a writable \"string\" has at most 123 registers"));
    CHECK_FALSE(has(errors, "modbus[0].point[2]"));   // read-only: 125 registers is one read
}

// Units on one RS-485 line share its port: its speed and framing are one,
// and each unit id is one device.
TEST_CASE("devices on one serial line agree on its settings and differ in unit id") {
    std::string toml;
    for (auto [name, baud, unit] : {std::tuple{"a", 19200, 1}, {"b", 19200, 2}, {"c", 9600, 3}, {"d", 19200, 2}}) {
        toml += std::string("[[modbus]]\nname = \"") + name + "\"\ntransport = \"rtu\"\nserial = \"/dev/ttyUSB0\"\n" +
                "baud = " + std::to_string(baud) + "\nunit_id = " + std::to_string(unit) +
                "\n[[modbus.point]]\nname = \"p\"\nkind = \"holding\"\naddress = 0\n";
    }
    toml += "[[modbus]]\nname = \"e\"\ntransport = \"rtu\"\nserial = \"/dev/ttyUSB1\"\nbaud = 9600\nunit_id = 1\n"
            "[[modbus.point]]\nname = \"p\"\nkind = \"holding\"\naddress = 0\n";
    config::AppConfig c;
    auto errors = load(toml, c);
    std::string all;
    for (const std::string& e : errors) all += e + "\n";
    INFO(all);
    CHECK(errors.size() == 2);   // c: its baud differs (named once); d: unit 2 is b's
    CHECK(has(errors, "modbus[2].serial: device \"a\" uses /dev/ttyUSB0 with another baud"));
    CHECK(has(errors, "modbus[3].unit_id: device \"b\" on /dev/ttyUSB0 has unit_id 2 too"));
}

TEST_CASE("two devices may not share a point or status topic; RTU needs a unit 1..247 and 8 data bits") {
    const std::string point = "[[modbus.point]]\nname = \"sp\"\nkind = \"holding\"\naddress = 0\nwritable = true\n";
    std::string toml = "[[modbus]]\nname = \"press1\"\nhost = \"10.0.0.5\"\ntopic_prefix = \"plant/press\"\n" + point +
                       "[[modbus]]\nname = \"press2\"\nhost = \"10.0.0.6\"\ntopic_prefix = \"plant/press\"\n" + point +
                       "[[modbus]]\nname = \"m\"\ntransport = \"rtu\"\nserial = \"/dev/ttyUSB0\"\nunit_id = 0\n"
                       "data_bits = 7\n" + point;
    config::AppConfig c;
    auto errors = load(toml, c);
    std::string all;
    for (const std::string& e : errors) all += e + "\n";
    INFO(all);
    CHECK(has(errors, "modbus[1].status_topic: topic \"plant/press/$status\" is device \"press1\"'s too"));
    CHECK(has(errors, "modbus[2].unit_id: RTU unit ids are 1..247"));
    CHECK(has(errors, "modbus[2].data_bits: Modbus RTU frames have 8 data bits"));
    CHECK(errors.size() == 3);
    // One device's status topic on another's point, and a point on another's /set.
    toml = "[[modbus]]\nname = \"a\"\nhost = \"h\"\ntopic_prefix = \"p\"\n" + point +
           "[[modbus]]\nname = \"b\"\nhost = \"h\"\ntopic_prefix = \"q\"\nstatus_topic = \"p/sp\"\n" + point +
           "[[modbus]]\nname = \"c\"\nhost = \"h\"\ntopic_prefix = \"p/sp\"\n"
           "[[modbus.point]]\nname = \"set\"\nkind = \"holding\"\naddress = 0\n";
    errors = load(toml, c);
    CHECK(has(errors, "modbus[1].status_topic: topic \"p/sp\" is device \"a\"'s too"));
    CHECK(has(errors, "modbus[2].topic_prefix: topic \"p/sp/set\" is device \"a\"'s too"));
    CHECK(errors.size() == 2);
}
