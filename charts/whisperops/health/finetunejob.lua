-- Argo CD health of a whisperops.dev FineTuneJob (one training run), read from its kstatus conditions.
-- Degraded: the run failed (Stalled/Failed). Suspended: spec.suspend. Healthy: the run succeeded.
-- Progressing: anything else (pending, running, status not yet written for this generation).
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
elseif is("Failed") then
  hs.status = "Degraded"; hs.message = say("Failed")
elseif is("Suspended") then
  hs.status = "Suspended"; hs.message = say("Suspended")
elseif is("Ready") then
  hs.status = "Healthy"; hs.message = say("Ready")
elseif is("Reconciling") then
  hs.status = "Progressing"; hs.message = say("Reconciling")
elseif c["Ready"] ~= nil then
  hs.status = "Progressing"; hs.message = say("Ready")
end
return hs
