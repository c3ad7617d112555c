# How well can the expert's next action be predicted from the scene's full privileged state? A ceiling for what a
# policy's offline action error can show: 5-nearest-neighbour (median) regression of the normalized expert action
# from the standardized proprio (ee xyz, rpy, gripper opening) + every object's position + the fixtures' xy, per
# task, trained on all but the 4 highest seeds of each task and scored on those (as `train --holdout 4`), against
# the per-task median ("taskconst"). Analysis only (numpy); nothing in the package or the tests needs Python.
# Run: python3 bench/state-knn.py DEMOS_DIR
import sys, os
D = sys.argv[1]
import json,glob,numpy as np
st=json.load(open(os.path.join(D,'dataset_statistics.json')));a=st['sqap_sim']['action'];q01=np.array(a['q01']);q99=np.array(a['q99'])
eps=[json.load(open(f)) for f in sorted(glob.glob(os.path.join(D,'episode_*.json')))]
bytask={}
for e in eps: bytask.setdefault(e['task_id'],[]).append(e)
def norm(x):
  x=np.array(x,float); y=2*(x-q01)/(q99-q01+1e-8)-1; y[:,6]=x[:,6]; return np.clip(y,-1,1)
tot=[]
for t,es in sorted(bytask.items()):
  es=sorted(es,key=lambda e:e['seed']); tr,ho=es[:-4],es[-4:]
  def feats(e):
    X=[e["proprio"][i]+[v for k in sorted(e["object_positions"]) for v in e["object_positions"][k][i]]+[v for k in sorted(e["fixture_positions"]) for v in e["fixture_positions"][k][:2]] for i in range(e["steps"])]
    return np.array(X)
  Xtr=np.concatenate([feats(e) for e in tr]);Ytr=np.concatenate([norm(e['expert_actions']) for e in tr])
  Xho=np.concatenate([feats(e) for e in ho]);Yho=np.concatenate([norm(e['expert_actions']) for e in ho])
  mu,sd=Xtr.mean(0),Xtr.std(0)+1e-6
  A=(Xtr-mu)/sd;B=(Xho-mu)/sd
  d=((B[:,None,:]-A[None,:,:])**2).sum(-1);nn=np.argsort(d,1)[:,:5]
  knn=np.abs(np.median(Ytr[nn],1)-Yho).mean(0)
  const=np.abs(np.median(Ytr,0)-Yho).mean(0)
  print(t,'knn',np.round(knn,3),'taskconst',np.round(const,3))
