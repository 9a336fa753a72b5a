-- Argo CD health check for corvid.dev/Topology (resource.customizations.health.corvid.dev_Topology).
-- The sync reports on each Topology with kstatus conditions (Ready, Reconciling, Stalled) and observedGeneration,
-- the same contract Flux reads. Written for Argo CD's Lua 5.1 (gopher-lua): base and string functions only.
local hs = {}

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "waiting for the sync"
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")

-- A Stalled topology does not get better by waiting: bad schema, bad meaning, a broken source.
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "stalled")
  return hs
end

-- Status that describes an older spec says nothing about this one.
local generation = obj.metadata and obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the sync to observe generation " .. tostring(generation)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if status.lastAppliedRevision ~= nil and status.lastAppliedRevision ~= "" then
    hs.message = describe(ready, "ready") .. " (" .. status.lastAppliedRevision .. ")"
  else
    hs.message = describe(ready, "ready")
  end
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "reconciling")
  return hs
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "not ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "waiting for the sync")
return hs
