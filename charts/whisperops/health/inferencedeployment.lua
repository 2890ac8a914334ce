-- Argo CD health of a whisperops.dev InferenceDeployment (a model served on an EdgePool), read from
-- its kstatus conditions. Degraded: Stalled (pool missing, model unresolvable, artifact refused, a
-- candidate rolled back). Progressing: Reconciling (canary rollout, rollback, model loading), or not
-- Ready for another reason. Healthy: Ready (the stable model serves).
local hs = { status = "Progressing", message = "waiting for the operator to report this generation" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  return hs
end
local c = {}
for _, cond in ipairs(obj.status.conditions) do
  c[cond.type] = cond
end
local function is(t) return c[t] ~= nil and c[t].status == "True" end
local function say(t) return (c[t].reason or "") .. ": " .. (c[t].message or "") end
if is("Stalled") then
  hs.status = "Degraded"; hs.message = say("Stalled")
elseif is("Reconciling") then
  hs.status = "Progressing"; hs.message = say("Reconciling")
elseif is("Ready") then
  hs.status = "Healthy"; hs.message = say("Ready")
elseif c["Ready"] ~= nil then
  hs.status = "Progressing"; hs.message = say("Ready")
end
return hs
