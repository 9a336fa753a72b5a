-- Argo CD health check for apps/DaemonSet (resource.customizations.health.apps_DaemonSet).
-- Argo CD keys health checks by kind, so this one judges every DaemonSet it manages. All but Corvid's agent (labels
-- app.kubernetes.io/name=corvid and app.kubernetes.io/component=agent) get Argo CD's built-in rule unchanged
-- (gitops-engine pkg/health/health_daemonset.go, as kubectl rollout status): every pod updated and available.
-- The agent is Healthy once its rollout has gone as far as it can: no available pod runs an old template. A pod that
-- is not available (its edge node offline, or still starting) does not hold the Application Progressing; the agents
-- report for themselves (heartbeats, the Gateways' and the Topology's health, `corvid status`).
-- Written for Argo CD's Lua 5.1 (gopher-lua): base and string functions only.
local hs = {}

local function count(v)
  if v == nil then
    return 0
  end
  return v
end

local metadata = obj.metadata or {}
local labels = metadata.labels or {}
local spec = obj.spec or {}
local status = obj.status or {}
local generation = count(metadata.generation)
local observed = count(status.observedGeneration)
local desired = count(status.desiredNumberScheduled)
local updated = count(status.updatedNumberScheduled)
local available = count(status.numberAvailable)
local onDelete = spec.updateStrategy ~= nil and spec.updateStrategy.type == "OnDelete"
-- OnDelete driven by OpenYurt's yurt-manager (deploy/components/openyurt-rollout): a rollout all the same.
local annotations = metadata.annotations or {}
local rolledByOpenYurt = onDelete and annotations["apps.openyurt.io/update-strategy"] == "AdvancedRollingUpdate"

if labels["app.kubernetes.io/name"] ~= "corvid" or labels["app.kubernetes.io/component"] ~= "agent" then
  if generation > observed then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: observed daemon set generation less then desired generation"
    return hs
  end
  if onDelete then
    hs.status = "Healthy"
    hs.message = "daemon set " .. tostring(updated) .. " out of " .. tostring(desired) .. " new pods have been updated"
    return hs
  end
  if updated < desired then
    hs.status = "Progressing"
    hs.message = "Waiting for daemon set \"" .. tostring(metadata.name) .. "\" rollout to finish: " .. tostring(updated) ..
      " out of " .. tostring(desired) .. " new pods have been updated..."
    return hs
  end
  if available < desired then
    hs.status = "Progressing"
    hs.message = "Waiting for daemon set \"" .. tostring(metadata.name) .. "\" rollout to finish: " .. tostring(available) ..
      " of " .. tostring(desired) .. " updated pods are available..."
    return hs
  end
  hs.status = "Healthy"
  hs.message = ""
  return hs
end

-- Corvid's agent.
if generation > observed then
  hs.status = "Progressing"
  hs.message = "waiting for the DaemonSet controller to observe generation " .. tostring(generation)
  return hs
end

local unavailable = desired - available
local summary = tostring(updated) .. " of " .. tostring(desired) .. " agents updated, " .. tostring(available) .. " available"

-- More agents available than updated: at least one available agent still runs an old template, so the rollout can
-- still move. It also stays here when unavailable pods use up maxUnavailable: the DaemonSet controller counts an
-- offline node's pod against it, and replaces no other until the node is back.
if (not onDelete or rolledByOpenYurt) and available > updated then
  hs.status = "Progressing"
  hs.message = "rolling out: " .. summary
  return hs
end

if desired > 0 and available == 0 then
  hs.status = "Progressing"
  hs.message = "waiting for an agent to become available: " .. summary
  return hs
end

hs.status = "Healthy"
if unavailable > 0 then
  hs.message = summary .. "; " .. tostring(unavailable) .. " not available (node offline, or pod starting)"
else
  hs.message = summary
end
return hs
