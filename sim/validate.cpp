#include "sim/validate.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "sim/options.hpp"
#include "workloads/workload.hpp"

namespace vtx::sim {
namespace {

[[noreturn]] void bad(const std::string& file, const std::string& what) {
    throw model::ConfigError("validation point " + display_path(file) + ": " + what);
}

std::string text_field(const nlohmann::json& j, const char* key, const std::string& file, bool required = true) {
    if (!j.contains(key)) {
        if (required) bad(file, std::string("missing \"") + key + "\"");
        return "";
    }
    if (!j[key].is_string() || j[key].get<std::string>().empty()) bad(file, std::string("\"") + key + "\" must be a non-empty string");
    return j[key].get<std::string>();
}

double positive_number(const nlohmann::json& j, const char* key, const std::string& file) {
    if (!j.contains(key) || !j[key].is_number() || !std::isfinite(j[key].get<double>()) || j[key].get<double>() <= 0)
        bad(file, std::string("\"") + key + "\" must be a positive number");
    return j[key].get<double>();
}

}  // namespace

ValidationPoint ValidationPoint::load(const std::string& path) {
    const nlohmann::json j = read_json_file(path, "validation point " + display_path(path));
    if (!j.is_object()) bad(path, "top level must be an object");
    static const std::set<std::string> kKeys = {"quantity", "value", "unit", "spread", "cpu", "setup", "citation",
                                                "used_for_fitting", "model", "differences"};
    for (const auto& [key, v] : j.items())
        if (!kKeys.count(key)) bad(path, "unknown key \"" + key + "\"");
    ValidationPoint p;
    p.file = path;
    p.name = std::filesystem::path(path).stem().string();
    p.quantity = text_field(j, "quantity", path);
    p.value = positive_number(j, "value", path);
    p.unit = text_field(j, "unit", path);
    if (p.unit != "cycles" && p.unit != "ns") bad(path, "\"unit\" must be cycles or ns, not \"" + p.unit + "\"");
    if (j.contains("spread") && !j["spread"].is_null()) p.spread = positive_number(j, "spread", path);
    p.cpu = text_field(j, "cpu", path);
    p.setup = text_field(j, "setup", path);
    p.citation = text_field(j, "citation", path);
    if (j.contains("used_for_fitting")) {
        if (!j["used_for_fitting"].is_boolean()) bad(path, "\"used_for_fitting\" must be true or false");
        p.used_for_fitting = j["used_for_fitting"].get<bool>();
    }
    if (p.used_for_fitting)
        bad(path, "a measurement used for fitting is training data (profiles/training), not a validation point");
    if (!j.contains("model") || !j["model"].is_object()) bad(path, "missing object \"model\" (the run that stands for it)");
    const nlohmann::json& m = j["model"];
    static const std::set<std::string> kModelKeys = {"workload", "apic", "ipiv", "profile", "metric", "vcpus", "runs", "set"};
    for (const auto& [key, v] : m.items())
        if (!kModelKeys.count(key)) bad(path, "model: unknown key \"" + key + "\"");
    p.workload = text_field(m, "workload", path);
    if (!workloads::find_workload(p.workload)) bad(path, "model: unknown workload \"" + p.workload + "\"");
    if (m.contains("apic")) p.apic = text_field(m, "apic", path);
    if (p.apic != "xapic" && p.apic != "x2apic") bad(path, "model: apic must be xapic or x2apic");
    if (m.contains("ipiv")) {
        if (!m["ipiv"].is_boolean()) bad(path, "model: ipiv must be true or false");
        p.ipiv = m["ipiv"].get<bool>();
    }
    if (m.contains("profile")) p.profile = text_field(m, "profile", path);
    if (m.contains("metric")) p.metric = text_field(m, "metric", path);
    if (m.contains("vcpus")) {
        if (!m["vcpus"].is_number_unsigned() || m["vcpus"].get<unsigned>() < 1 || m["vcpus"].get<unsigned>() > 4096)
            bad(path, "model: vcpus must be a whole number from 1 to 4096");
        p.vcpus = m["vcpus"].get<unsigned>();
    }
    if (m.contains("runs")) {
        if (!m["runs"].is_number_unsigned() || m["runs"].get<unsigned>() < 1 || m["runs"].get<unsigned>() > 100)
            bad(path, "model: runs must be a whole number from 1 to 100");
        p.runs = m["runs"].get<unsigned>();
    }
    if (m.contains("set")) {
        if (!m["set"].is_array()) bad(path, "model: set must be an array of \"KEY=VALUE\"");
        for (const auto& s : m["set"]) {
            if (!s.is_string()) bad(path, "model: set must be an array of \"KEY=VALUE\"");
            p.sets.push_back(s.get<std::string>());
        }
    }
    if (!j.contains("differences") || !j["differences"].is_array())
        bad(path, "missing array \"differences\" (how the measured setup differs from the model run; [] when it does not)");
    for (const auto& d : j["differences"]) {
        if (!d.is_string() || d.get<std::string>().empty()) bad(path, "differences: each must be a non-empty string");
        p.differences.push_back(d.get<std::string>());
    }
    return p;
}

std::vector<std::string> validation_files() {
    std::vector<std::string> files;
    const std::filesystem::path dir = std::filesystem::path(profile_dir()) / "validation";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().extension() == ".json") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace vtx::sim
