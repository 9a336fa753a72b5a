-- Argo CD health check for raven.openyurt.io/Gateway (resource.customizations.health.raven.openyurt.io_Gateway).
-- spec.endpoints are the gateway candidates; the sync elects among them and writes status.activeEndpoints.
-- Written for Argo CD's Lua 5.1 (gopher-lua): base, table and string functions only.
local hs = {}

local function names(endpoints)
  local seen = {}
  local list = {}
  for _, e in ipairs(endpoints) do
    local n = e.nodeName
    if n ~= nil and not seen[n] then
      seen[n] = true
      table.insert(list, n)
    end
  end
  return table.concat(list, ", ")
end

local candidates = {}
if obj.spec ~= nil and obj.spec.endpoints ~= nil then
  candidates = obj.spec.endpoints
end
if #candidates == 0 then
  hs.status = "Degraded"
  hs.message = "no gateway candidates"
  return hs
end

local status = obj.status
local active = {}
if status ~= nil and status.activeEndpoints ~= nil then
  active = status.activeEndpoints
end
if #active > 0 then
  hs.status = "Healthy"
  hs.message = "active: " .. names(active)
  return hs
end

-- No status at all: the sync has not seen this Gateway yet.
if status == nil or next(status) == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the sync to elect a gateway among " .. names(candidates)
  return hs
end

-- The sync has written status and elected nobody: no candidate is healthy. Cross-pool traffic of this pool is down.
hs.status = "Degraded"
hs.message = "no active endpoint: no healthy candidate among " .. names(candidates)
return hs
