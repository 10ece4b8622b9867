-- mod_securejingle_hostile: a deliberately hostile Prosody module for
-- securejingle's integration tests. It makes the real server act as an
-- attacker against its own users, on command from a test.
--
-- NEVER load this module on a server that real people use: it rewrites,
-- drops, reroutes and forges stanzas.
--
-- Written for Prosody 0.12 (Debian 12, Lua 5.4). Loaded by
-- internal/prosodytest (Go) with the WithHostile option, which also creates
-- the control account and sets the two options below. Go's
-- prosodytest.Hostile type is the documented client; this file is its
-- server half.
--
-- Options (global or per VirtualHost):
--   securejingle_hostile_control = "localpart"  -- the only account allowed
--                                                  to send commands
--   securejingle_hostile_log = "/path/file"     -- JSON-lines stanza log
--
-- Control channel: an IQ set from the control account to the host,
--   <iq type='set' to='HOST'><command xmlns='urn:securejingle:prosodytest:hostile:0'>JSON</command></iq>
-- answered with
--   <iq type='result'><result xmlns='urn:securejingle:prosodytest:hostile:0'>JSON</result></iq>
-- or a bad-request error whose text names the problem. A command is applied
-- before its result is sent, so once the test has the result the rule is
-- in force for every stanza the server handles afterwards.
--
-- Commands (JSON objects, "op" says which):
--   rewrite  {stanza, from, to, remove=[{name,ns}], deep, add=[xml],
--             add_always, drop}            -> {rule}
--       Applied to every stanza delivered to a user's session (the last hop):
--       removes the child elements named in remove (at any depth when deep),
--       then adds the elements in add (only if something was removed, unless
--       add_always), or drops the stanza when drop. A hit is counted only
--       when the stanza was changed or dropped. A deep rule's from also
--       matches the from of a message forwarded in a carbon copy.
--   reroute  {from, to, new_to, rewrite_to} -> {rule}
--       A message routed to `to` goes to new_to instead: with rewrite_to its
--       'to' attribute is changed and it is routed again; otherwise it is
--       written unchanged to new_to's sessions.
--   answer   {to, from, child={name,ns}, result=[xml], error} -> {rule}
--       An IQ get/set addressed exactly to `to` whose first child is
--       {ns}name is answered by the server: a result with the given children,
--       or an error with the given defined condition. Works for full JIDs
--       that have no session (phantom devices) and for bare JIDs (PEP).
--   inject   {xml, to, route}              -> {delivered}
--       Parses xml as a stanza and writes it to the sessions of `to` (one full
--       JID, or every session of a bare JID; default: the stanza's own 'to'),
--       filling in 'to' with each session's full JID when the stanza has
--       none. With route, it is routed by the server from the host instead.
--   hits     {rule}                         -> {hits}
--   remove   {rule}                         -> {}
--   reset    {}                             -> {}   (removes every rule)
--
-- JID matching in from/to: "" or absent matches anything, a bare JID matches
-- that account and all its resources, a full JID matches only itself. The
-- 'to' of rewrite rules is the session the stanza is delivered to.
--
-- Stanza log: one JSON object per line, flushed before the stanza is
-- written to the socket, so a test that has received a stanza can read its
-- entry at once:
--   {"seq":N, "dir":"in"|"out"|"drop", "session":"user@host/res",
--    "name":"message", "type":"chat", "id":"...", "from":"...", "to":"...",
--    "rules":"r1 r2", "xml":"<message .../>"}
-- "in" is what a client sent (before routing, 'from' not yet stamped: the
-- session field says who sent it), "out" what a session was sent (after
-- rewriting), "drop" what a rewrite rule withheld. The control account's
-- traffic is neither logged nor touched.

local st = require "util.stanza";
local jid_util = require "util.jid";
local json = require "util.json";
local xml = require "util.xml";
local filters = require "util.filters";

local NS = "urn:securejingle:prosodytest:hostile:0";
local NS_CLIENT = "jabber:client";

-- Bounds on what one command may carry: this is a test tool, but a typo in a
-- test should give a clear error, not a server that eats memory.
local MAX_XML = 256 * 1024;
local MAX_LIST = 64;
local MAX_RULES = 1024;

local host = module.host;
local control = module:get_option_string("securejingle_hostile_control");
local log_path = module:get_option_string("securejingle_hostile_log");
if not control or not log_path then
	error("mod_securejingle_hostile: set securejingle_hostile_control and securejingle_hostile_log");
end

local full_sessions, bare_sessions = prosody.full_sessions, prosody.bare_sessions;

local logf = assert(io.open(log_path, "a"));
local seq = 0;

local rules = {};    -- ordered list of rule tables
local next_rule = 0;

module:log("warn", "HOSTILE MODULE LOADED: this server attacks its users on command (test use only)");

local function is_control(session)
	return session.username == control and session.host == host;
end

local function write_log(dir, session, stanza, applied)
	seq = seq + 1;
	local attr = stanza.attr;
	logf:write(json.encode({
		seq = seq;
		dir = dir;
		session = session.full_jid or "";
		name = stanza.name;
		type = attr.type or "";
		id = attr.id or "";
		from = attr.from or "";
		to = attr.to or "";
		rules = applied or "";
		xml = tostring(stanza);
	}), "\n");
	logf:flush();
end

-- jid_matches reports whether the JID j matches pattern (see the header).
local function jid_matches(pattern, j)
	if pattern == nil or pattern == "" then return true; end
	j = j and jid_util.prep(j);
	if j == nil then return false; end
	if jid_util.resource(pattern) then return j == pattern; end
	return jid_util.bare(j) == pattern;
end

-- remove_matching removes the children of el named {ns}name, at any depth
-- when deep, and returns how many it removed. el_ns is el's namespace;
-- Prosody leaves xmlns unset on elements that inherit it.
local function remove_matching(el, name, ns, deep, el_ns)
	local n = 0;
	el:maptags(function(tag)
		local tag_ns = tag.attr.xmlns or el_ns;
		if tag.name == name and tag_ns == ns then
			n = n + 1;
			return nil;
		end
		if deep then
			n = n + remove_matching(tag, name, ns, deep, tag_ns);
		end
		return tag;
	end);
	return n;
end

-- normalize drops xmlns attributes equal to the inherited namespace, so that
-- parsed test XML has the same shape as stanzas Prosody reads from a stream.
local function normalize(el, parent_ns)
	if el.attr.xmlns == parent_ns then el.attr.xmlns = nil; end
	local ns = el.attr.xmlns or parent_ns;
	for _, child in ipairs(el.tags) do normalize(child, ns); end
	return el;
end

-- Argument checking for commands: each raises a plain error message that
-- the control handler sends back as the text of a bad-request error.
local function fail(fmt, ...) error(fmt:format(...), 0); end

local function opt_string(cmd, key)
	local v = cmd[key];
	if v == nil or v == json.null then return ""; end
	if type(v) ~= "string" then fail("%s must be a string", key); end
	return v;
end

local function opt_jid(cmd, key)
	local v = opt_string(cmd, key);
	if v == "" then return ""; end
	local p = jid_util.prep(v);
	if not p then fail("%s: %q is not a valid JID", key, v); end
	return p;
end

local function req_jid(cmd, key)
	local v = opt_jid(cmd, key);
	if v == "" then fail("%s is required", key); end
	return v;
end

local function opt_bool(cmd, key)
	local v = cmd[key];
	if v == nil or v == json.null then return false; end
	if type(v) ~= "boolean" then fail("%s must be true or false", key); end
	return v;
end

local function opt_list(cmd, key)
	local v = cmd[key];
	if v == nil or v == json.null then return {}; end
	if type(v) ~= "table" then fail("%s must be a list", key); end
	if #v > MAX_LIST then fail("%s has more than %d entries", key, MAX_LIST); end
	return v;
end

local function parse_xml(s, what, parent_ns)
	if type(s) ~= "string" or s == "" then fail("%s must be a non-empty XML string", what); end
	if #s > MAX_XML then fail("%s is longer than %d bytes", what, MAX_XML); end
	local el, err = xml.parse(s);
	if not el then fail("%s is not well-formed XML: %s", what, tostring(err)); end
	return normalize(el, parent_ns);
end

local function parse_name(v, what)
	if type(v) ~= "table" or type(v.name) ~= "string" or v.name == "" then
		fail("%s must be {name, ns} with a non-empty name", what);
	end
	local ns = v.ns;
	if ns == nil or ns == json.null or ns == "" then ns = NS_CLIENT; end
	if type(ns) ~= "string" then fail("%s.ns must be a string", what); end
	return { name = v.name, ns = ns };
end

local function add_rule(r)
	if #rules >= MAX_RULES then fail("more than %d rules: send reset", MAX_RULES); end
	next_rule = next_rule + 1;
	r.id = "r" .. next_rule;
	r.hits = 0;
	rules[#rules + 1] = r;
	return { rule = r.id };
end

local function find_rule(cmd)
	local id = opt_string(cmd, "rule");
	for i, r in ipairs(rules) do
		if r.id == id then return r, i; end
	end
	fail("no rule %q", id);
end

-- sessions_of returns the sessions of target: the one session of a full JID
-- or every session of a bare JID (none for an unknown or offline account).
local function sessions_of(target)
	local out = {};
	if jid_util.resource(target) then
		local s = full_sessions[target];
		if s then out[1] = s; end
		return out;
	end
	local bs = bare_sessions[target];
	if bs then
		for _, s in pairs(bs.sessions) do out[#out + 1] = s; end
	end
	return out;
end

-- deliver writes a copy of stanza to every session of target; a stanza
-- without 'to' gets each session's full JID. It returns how many accepted it.
local function deliver(stanza, target)
	local n = 0;
	for _, s in ipairs(sessions_of(target)) do
		local c = st.clone(stanza);
		if not c.attr.to then c.attr.to = s.full_jid; end
		if s.send(c) then n = n + 1; end
	end
	return n;
end

local commands = {};

function commands.rewrite(cmd)
	local r = {
		kind = "rewrite";
		stanza = opt_string(cmd, "stanza");
		from = opt_jid(cmd, "from");
		to = opt_jid(cmd, "to");
		remove = {};
		add = {};
		deep = opt_bool(cmd, "deep");
		add_always = opt_bool(cmd, "add_always");
		drop = opt_bool(cmd, "drop");
	};
	if r.stanza ~= "" and r.stanza ~= "message" and r.stanza ~= "presence" and r.stanza ~= "iq" then
		fail("stanza must be message, presence, iq or empty, not %q", r.stanza);
	end
	for i, v in ipairs(opt_list(cmd, "remove")) do r.remove[i] = parse_name(v, "remove[" .. i .. "]"); end
	for i, v in ipairs(opt_list(cmd, "add")) do r.add[i] = parse_xml(v, "add[" .. i .. "]", NS_CLIENT); end
	if not r.drop and #r.remove == 0 and #r.add == 0 then fail("rewrite needs remove, add or drop"); end
	return add_rule(r);
end

function commands.reroute(cmd)
	return add_rule({
		kind = "reroute";
		from = opt_jid(cmd, "from");
		to = req_jid(cmd, "to");
		new_to = req_jid(cmd, "new_to");
		rewrite_to = opt_bool(cmd, "rewrite_to");
	});
end

function commands.answer(cmd)
	local r = {
		kind = "answer";
		to = req_jid(cmd, "to");
		from = opt_jid(cmd, "from");
		child = parse_name(cmd.child, "child");
		result = {};
		error = opt_string(cmd, "error");
	};
	for i, v in ipairs(opt_list(cmd, "result")) do r.result[i] = parse_xml(v, "result[" .. i .. "]", NS_CLIENT); end
	if r.error ~= "" and #r.result > 0 then fail("answer takes result or error, not both"); end
	return add_rule(r);
end

function commands.inject(cmd)
	local stanza = parse_xml(cmd.xml, "xml", nil);
	if stanza.attr.xmlns == NS_CLIENT then stanza.attr.xmlns = nil; normalize(stanza, NS_CLIENT); end
	if stanza.attr.xmlns ~= nil or (stanza.name ~= "message" and stanza.name ~= "presence" and stanza.name ~= "iq") then
		fail("xml must be a jabber:client message, presence or iq, not {%s}%s", tostring(stanza.attr.xmlns), stanza.name);
	end
	local target = opt_jid(cmd, "to");
	if target == "" then target = stanza.attr.to and jid_util.prep(stanza.attr.to) or ""; end
	if target == "" then fail("inject needs to, or a 'to' in the stanza"); end
	if opt_bool(cmd, "route") then
		if not stanza.attr.to then stanza.attr.to = target; end
		module:send(stanza);
		return { delivered = 1 };
	end
	return { delivered = deliver(stanza, target) };
end

function commands.hits(cmd)
	local r = find_rule(cmd);
	return { hits = r.hits };
end

function commands.remove(cmd)
	local _, i = find_rule(cmd);
	table.remove(rules, i);
	return { ok = true };
end

function commands.reset()
	rules = {};
	return { ok = true };
end

module:hook("iq-set/host/" .. NS .. ":command", function(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" or not is_control(origin) then
		origin.send(st.error_reply(stanza, "auth", "forbidden", "only the hostile control account may command"));
		return true;
	end
	local cmd = json.decode(stanza.tags[1]:get_text() or "");
	if type(cmd) ~= "table" or type(cmd.op) ~= "string" or not commands[cmd.op] then
		origin.send(st.error_reply(stanza, "modify", "bad-request", "command must be a JSON object with a known op"));
		return true;
	end
	local ok, res = pcall(commands[cmd.op], cmd);
	if not ok then
		origin.send(st.error_reply(stanza, "modify", "bad-request", cmd.op .. ": " .. tostring(res)));
		return true;
	end
	res.ok = true; -- never an empty table, which util.json writes as []
	module:log("info", "hostile command %s applied", cmd.op);
	origin.send(st.reply(stanza):text_tag("result", json.encode(res), { xmlns = NS }));
	return true;
end);

-- forwarded_from returns the from of the message forwarded inside a carbon
-- copy (XEP-0280), or nil.
local NS_CARBONS, NS_FORWARD = "urn:xmpp:carbons:2", "urn:xmpp:forward:0";
local function forwarded_from(stanza)
	if stanza.name ~= "message" then return nil; end
	for _, c in ipairs(stanza.tags) do
		if c.attr.xmlns == NS_CARBONS and (c.name == "sent" or c.name == "received") then
			local f = c:get_child("forwarded", NS_FORWARD);
			for _, m in ipairs(f and f.tags or {}) do
				if m.name == "message" and (m.attr.xmlns == nil or m.attr.xmlns == NS_CLIENT) then
					return m.attr.from;
				end
			end
			return nil;
		end
	end
	return nil;
end

-- from_matches: the stanza's from, or for a deep rule also the from of a
-- carbon-copied message (Prosody sends carbons without a from).
local function from_matches(r, stanza)
	if jid_matches(r.from, stanza.attr.from) then return true; end
	return r.deep and r.from ~= "" and jid_matches(r.from, forwarded_from(stanza));
end

-- Last hop: rewrite rules and the "out" log, for every stanza written to a
-- user's session.
local function out_filter(stanza, session)
	if not stanza.name or session.host ~= host or not session.full_jid or is_control(session) then
		return stanza;
	end
	local cur, applied = stanza, nil;
	for _, r in ipairs(rules) do
		if r.kind == "rewrite" and (r.stanza == "" or r.stanza == stanza.name)
			and from_matches(r, cur) and jid_matches(r.to, session.full_jid) then
			if r.drop then
				r.hits = r.hits + 1;
				write_log("drop", session, cur, r.id);
				return nil;
			end
			-- Never change the original: the same object may be on its way
			-- to other sessions.
			local c = st.clone(cur);
			local removed = 0;
			for _, n in ipairs(r.remove) do
				removed = removed + remove_matching(c, n.name, n.ns, r.deep, NS_CLIENT);
			end
			if removed > 0 or r.add_always then
				for _, el in ipairs(r.add) do c:add_direct_child(st.clone(el)); end
			end
			if removed > 0 or (r.add_always and #r.add > 0) then
				r.hits = r.hits + 1;
				cur = c;
				applied = applied and (applied .. " " .. r.id) or r.id;
			end
		end
	end
	write_log("out", session, cur, applied);
	return cur;
end

local function in_filter(stanza, session)
	if stanza.name and session.host == host and session.full_jid and not is_control(session) then
		write_log("in", session, stanza, nil);
	end
	return stanza;
end

local function init_session(session)
	filters.add_filter(session, "stanzas/in", in_filter, 10000);
	filters.add_filter(session, "stanzas/out", out_filter, -10000);
end
filters.add_filter_hook(init_session);

function module.unload()
	filters.remove_filter_hook(init_session);
	logf:close();
end

-- Routing: reroute rules.
local rerouted = setmetatable({}, { __mode = "k" });

local function reroute_hook(event)
	local stanza = event.stanza;
	if rerouted[stanza] then return; end
	for _, r in ipairs(rules) do
		if r.kind == "reroute" and jid_matches(r.from, stanza.attr.from) and jid_matches(r.to, stanza.attr.to) then
			r.hits = r.hits + 1;
			local c = st.clone(stanza);
			rerouted[c] = true;
			if r.rewrite_to then
				c.attr.to = r.new_to;
				module:send(c);
			else
				deliver(c, r.new_to);
			end
			return true;
		end
	end
end
module:hook("message/full", reroute_hook, 1000);
module:hook("message/bare", reroute_hook, 1000);

-- IQs: answer rules (phantom devices, forged PEP items).
local function answer_hook(event)
	local origin, stanza = event.origin, event.stanza;
	local typ = stanza.attr.type;
	if typ ~= "get" and typ ~= "set" then return; end
	local child = stanza.tags[1];
	if not child then return; end
	local child_ns = child.attr.xmlns or NS_CLIENT;
	local to = stanza.attr.to and jid_util.prep(stanza.attr.to) or jid_util.bare(stanza.attr.from);
	for _, r in ipairs(rules) do
		if r.kind == "answer" and r.to == to and r.child.name == child.name and r.child.ns == child_ns
			and jid_matches(r.from, stanza.attr.from) then
			r.hits = r.hits + 1;
			local reply;
			if r.error ~= "" then
				reply = st.error_reply(stanza, "cancel", r.error);
			else
				reply = st.reply(stanza);
				for _, el in ipairs(r.result) do reply:add_direct_child(st.clone(el)); end
			end
			reply.attr.from = to;
			origin.send(reply);
			return true;
		end
	end
end
module:hook("iq/full", answer_hook, 1000);
module:hook("iq/bare", answer_hook, 1000);
module:hook("iq/self", answer_hook, 1000);
