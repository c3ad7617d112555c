"""A deploy.py-style client with only the standard library: posts a json-numpy uint8 image to POST /act and
decodes the json-numpy float64 action, in deploy.py's plain form or its double-encoded form.

usage: client.py URL RAW_RGB_FILE HEIGHT WIDTH INPUT_IDS(comma-separated) plain|encoded
prints the action as a JSON list (repr of each float64, so no digits are lost)."""
import base64
import json
import struct
import sys
import urllib.request

url, raw_path, height, width, ids, form = sys.argv[1:7]
with open(raw_path, "rb") as f:
    raw = f.read()
image = {"__numpy__": base64.b64encode(raw).decode(), "dtype": "|u1", "shape": [int(height), int(width), 3]}
payload = {"image": image, "instruction": "pick up the red cube", "input_ids": [int(i) for i in ids.split(",")]}
body = {"encoded": json.dumps(payload)} if form == "encoded" else payload
request = urllib.request.Request(url + "/act", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=60) as response:
    reply = json.loads(response.read())
if form == "encoded":
    reply = json.loads(reply)  # deploy.py double-encodes: the body is a JSON string holding the json-numpy object
assert reply["dtype"] == "<f8", reply
data = base64.b64decode(reply["__numpy__"])
action = struct.unpack("<%dd" % reply["shape"][0], data)
print(json.dumps(list(action)))
