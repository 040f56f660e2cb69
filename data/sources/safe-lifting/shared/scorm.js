// Minimal SCORM 2004 runtime calls for the sample package. CoursePilot never runs this file.
function findAPI(win) {
  var tries = 0;
  while (win && !win.API_1484_11 && win.parent && win.parent !== win && tries < 10) { win = win.parent; tries++; }
  return win ? win.API_1484_11 : null;
}
var api = findAPI(window);
if (api) { api.Initialize(""); window.addEventListener("unload", function () { api.SetValue("cmi.completion_status", "completed"); api.Terminate(""); }); }
